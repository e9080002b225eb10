"""Watching links: a replica world mutated between checks, classified and archived."""

from __future__ import annotations

import json
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from sqlalchemy import select

from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, Link, LinkCheck
from pipeline.config import paths
from pipeline.linkcheck.standing import standing_label
from pipeline.replica import ReplicaWorld
from pipeline.replica.content import Resource

pytestmark = pytest.mark.e2e

PAGES = {
    "riga": ("news", "/lv/riga-solidaritate"),
    "oslo": ("news", "/no/oslo-solidaritet"),
    "paris": ("news", "/fr/paris-solidarite"),
    "rome": ("news", "/it/roma-presidio"),
    "usa": ("news", "/en/usa-rallies"),
    "tokyo": ("blog", "/ja/tokyo-solidarity"),
    "vilnius": ("news", "/lt/vilnius-1"),
}
PARKED = (
    "<html><head><title>example-news.lt is for sale</title></head><body>"
    "<h1>This domain is for sale!</h1><p>Buy this domain. Related searches.</p></body></html>"
)
SOFT_404_RU = (
    "<html><head><meta charset='windows-1251'><title>Страница не найдена</title></head>"
    "<body><h1>Страница не найдена</h1><p>Запись удалена.</p></body></html>"
)


@pytest.fixture
def world() -> Iterator[ReplicaWorld]:
    """A world of its own: this test changes it."""
    with ReplicaWorld() as replica:
        yield replica


def _edited(world: ReplicaWorld, site: str, path: str) -> Resource:
    with urllib.request.urlopen(world.url(site, path)) as response:  # noqa: S310 - loopback
        html = response.read().decode("utf-8")
    update = (
        "<p>Update from the organisers: the march was moved to the harbour after the police "
        "closed the square. Several participants were detained and later released. The "
        "organisers thanked everyone who came despite the rain and the pressure.</p>"
    )
    return Resource(
        html.replace("</article>", update + "</article>", 1), "text/html; charset=utf-8"
    )


def test_checks_classify_archive_recapture_and_confirm_deaths(
    world: ReplicaWorld,
    prefect_server: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.crawl import check_flow, crawl_flow

    source = tmp_path / "seeds.csv"
    source.write_text(
        "country,city,kind,label,url\n"
        + "".join(
            f"Poland,,report,{name},{world.url(site, path)}\n"
            for name, (site, path) in PAGES.items()
        ),
        encoding="utf-8",
    )
    home = tmp_path / "home"
    assert crawl_flow(source=str(source), home=str(home))["status"] == "finished"

    site, path = PAGES["riga"]
    world.override(site, path, Resource("<html><title>Not Found</title></html>", "text/html", 404))
    world.override(*PAGES["oslo"], _edited(world, *PAGES["oslo"]))
    world.override(
        *PAGES["paris"],
        Resource(SOFT_404_RU, "text/html; charset=windows-1251", encoding="windows-1251"),
    )
    world.override(*PAGES["rome"], Resource("<h1>Forbidden</h1>", "text/html", 403))
    world.override("blog", "/parked", Resource(PARKED, "text/html"))
    world.override(
        *PAGES["usa"],
        Resource("", "text/html", 301, headers=(("Location", "{{site:blog}}/parked"),)),
    )
    world.override(*PAGES["vilnius"], Resource("<h1>Service Unavailable</h1>", "text/html", 503))
    monkeypatch.setenv("LINKARCHIVE_DEAD_AFTER_CHECKS", "2")
    monkeypatch.setenv("LINKARCHIVE_DEAD_AFTER_DAYS", "0")

    first = check_flow(home=str(home))

    def ids(session: Any) -> dict[str, int]:
        return {link.label: link.id for link in session.scalars(select(Link))}

    with session_scope(paths(home).database_url) as session:
        link_id = ids(session)
        judged = {name: status for status, links in first["statuses"].items()
                  for name, lid in link_id.items() if lid in links}  # fmt: skip
        assert judged == {
            "riga": "dead", "oslo": "changed", "paris": "soft404", "rome": "blocked",
            "usa": "redirected", "tokyo": "alive", "vilnius": "error",
        }  # fmt: skip
        status = {link.label: link.status for link in session.scalars(select(Link))}
        # One failed check is not a death, but it is said at once, counted.
        assert status["riga"] == "failing" and status["paris"] == "failing"
        riga = session.get_one(Link, link_id["riga"])
        assert standing_label(riga.status, riga.failures) == "failing (1 of 2)"
        # The check never replaces the full capture: search, get and evidence keep it.
        riga_full = riga.last_capture_id
        full = session.get_one(Capture, riga_full)
        assert full.http_status == 200 and full.run_id != first["run_id"]
        assert status["oslo"] == "changed" and status["rome"] == "blocked"
        change = (
            session.scalars(select(LinkCheck).where(LinkCheck.link_id == link_id["oslo"]))
            .one()
            .change
        )
        assert any("harbour" in sentence for sentence in change["added_text"])
        # The check itself is archived: the 404 and the soft-404 page are in the WARCs.
        gone = session.scalars(
            select(Capture).where(
                Capture.link_id == link_id["riga"], Capture.run_id == first["run_id"]
            )
        ).one()
        assert gone.http_status == 404
        # The changed page was captured again in full.
        recaptured = session.scalars(
            select(Capture).where(
                Capture.link_id == link_id["oslo"],
                Capture.run_id == first["recapture"]["run_id"],
            )
        ).all()
        assert {c.role for c in recaptured} >= {"page", "requisite"}
        tokyo_check = session.scalars(
            select(LinkCheck.capture_id).where(LinkCheck.link_id == link_id["tokyo"])
        ).one()
        tokyo_assets = set(
            session.scalars(
                select(Capture.url).where(
                    Capture.link_id == link_id["tokyo"],
                    Capture.role.in_(("requisite", "image")),
                    Capture.run_id != first["run_id"],
                )
            )
        )
    assert tokyo_assets  # the page has resources to borrow

    # Evidence of a link is its full capture, with everything archived with the page...
    from pipeline.cli import main

    package = tmp_path / "riga.wacz"
    argv = ["--home", str(home), "evidence", "export", str(link_id["riga"]), "--reason", "r"]
    assert main([*argv, "-o", str(package)]) == 0
    assert f"capture {riga_full}," in capsys.readouterr().out
    # ...and a check's page-only capture, named by its id, borrows each resource from its
    # nearest capture, and the summary says so.
    package = tmp_path / "tokyo-check.wacz"
    argv = ["--home", str(home), "evidence", "export", "--capture", str(tokyo_check)]
    assert main([*argv, "--reason", "r", "-o", str(package)]) == 0
    with zipfile.ZipFile(package) as packed:
        summary = packed.read("evidence/summary.md").decode("utf-8")
    assert "## Resources from other captures" in summary
    borrowed = summary.split("## Resources from other captures", 1)[1].split("\n## ", 1)[0]
    assert all(url.replace("_", "\\_") in borrowed or url in borrowed for url in tokyo_assets)
    capsys.readouterr()

    world.override(*PAGES["vilnius"], None)  # the flaky site is back
    second = check_flow(
        link_ids=[link_id["riga"], link_id["tokyo"], link_id["vilnius"]], home=str(home)
    )
    assert "recapture" not in second
    with session_scope(paths(home).database_url) as session:
        riga = session.get_one(Link, link_id["riga"])
        assert riga.status == "dead"  # two failed checks: now it is declared dead
        assert session.get_one(Link, link_id["tokyo"]).status == "alive"
        assert session.get_one(Link, link_id["vilnius"]).status == "alive"  # recovered

    # The command line: a check of one link, and the per-place status with its new columns.
    assert main(["--home", str(home), "check", "--link", str(link_id["tokyo"])]) == 0
    assert main(["--home", str(home), "status", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert "Check run" in out and "1 alive." in out
    (row,) = json.loads(out[out.index("[") :])
    assert (row["links"], row["changed"], row["dead"], row["blocked"]) == (7, 1, 1, 1)
    assert row["last_check"] is not None

    # The report: the table, a picture of health over time, and the surviving copies.
    target = tmp_path / "report.html"
    assert main(["--home", str(home), "report", "-o", str(target)]) == 0
    page = target.read_text(encoding="utf-8")
    assert "<svg" in page and "<rect" in page and "<script" not in page
    assert "src=" not in page and "http://" not in page.split("<table>", 1)[0]
    for name in ("riga", "oslo"):  # dead, and changed: each with its last good capture
        site, path = PAGES[name]
        row_html = page[page.index(world.url(site, path)) :].split("</tr>", 1)[0]
        assert "evidence export --capture" in row_html


def test_one_answer_one_status_whichever_command_saw_it(
    world: ReplicaWorld,
    prefect_server: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page moved within its site stays alive through crawl, check and crawl; a host
    that refuses connections is failing, counted, in every listing."""
    from flows.crawl import check_flow, crawl_flow
    from pipeline.cli import main

    closed = free_port()  # nothing listens: connection refused
    moved = world.url("news", "/ca/ottawa-rally")  # 301 to another path of the same site
    source = tmp_path / "seeds.csv"
    source.write_text(
        "country,city,kind,label,url\n"
        f"Canada,Ottawa,report,moved,{moved}\n"
        f"Canada,Ottawa,report,refused,http://127.0.0.1:{closed}/report\n",
        encoding="utf-8",
    )
    home = tmp_path / "home"

    def standings() -> dict[str, tuple[str, int]]:
        with session_scope(paths(home).database_url) as session:
            return {k.label: (k.status, k.failures) for k in session.scalars(select(Link))}

    def listed() -> dict[str, str]:
        assert main(["--home", str(home), "seeds", "list", "--format", "json"]) == 0
        return {row["label"]: row["status"] for row in json.loads(capsys.readouterr().out)}

    monkeypatch.setenv("LINKARCHIVE_DEAD_AFTER_DAYS", "0")
    seen = []
    assert crawl_flow(source=str(source), home=str(home))["status"] == "finished"
    seen.append(standings())
    check_flow(home=str(home))
    seen.append(standings())
    assert listed() == {"moved": "alive", "refused": "failing (2 of 3)"}
    assert crawl_flow(home=str(home))["status"] == "finished"
    seen.append(standings())
    assert [s["moved"] for s in seen] == [("alive", 0)] * 3
    assert [s["refused"] for s in seen] == [("failing", 1), ("failing", 2), ("dead", 3)]
    assert listed() == {"moved": "alive", "refused": "dead"}
