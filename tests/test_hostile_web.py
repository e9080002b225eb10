"""The hostile web: one real `linkarchive crawl` of a list where every link misbehaves.

A loopback :class:`WireServer` answers each path with something a crawler must survive: a
slow drip, a body without end, one far over the archive limit, gzip and deflate bombs,
redirect loops and long chains, malformed status lines and headers, unknown and lying
charsets, a ``Content-Length`` that lies both ways, a reset mid-body, silence after the
request, a page of 100,000 links and one nested 100,000 deep. Beside it: a self-signed
HTTPS server, an unresolvable host and a refused port.

For each link the crawl must finish, the link's status and error must say what happened,
every WARC file must pass ``warcio check``, and no process of the crawl may pass 1 GB RSS
(the largest, read from ``getrusage(RUSAGE_CHILDREN)`` by a wrapper around the CLI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from sqlalchemy import select
from wireserver import (
    HTML,
    Scenario,
    WireServer,
    deflate_bomb,
    hostile_scenarios,
    response,
    self_signed_tls,
)

from pipeline.catalog import session_scope
from pipeline.catalog.models import CrawlOutcome, Link, WarcFile
from pipeline.config import paths

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
GB = 1_000_000_000
LINKARCHIVE = str(Path(sys.executable).with_name("linkarchive"))
TIMEOUT = 12  # LINKARCHIVE_DOWNLOAD_TIMEOUT for this crawl, seconds

# Runs the CLI and reports the peak RSS of the largest process in its tree that ended
# (every process of a crawl is waited for by its parent, so all of them count).
WRAPPER = """
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[2:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
json.dump({"returncode": proc.returncode, "peak_rss_bytes": peak,
           "stdout": proc.stdout, "stderr": proc.stderr}, open(sys.argv[1], "w"))
"""

TEXT = [("Content-Type", "text/html; charset=utf-8")]


def _drip() -> Any:
    import time

    yield b"<!doctype html><html><body>"
    while True:
        time.sleep(0.5)
        yield b"."


def _many_links(count: int) -> bytes:
    items = b"".join(b'<a href="/l/%d">rally %d</a>\n' % (i, i) for i in range(count))
    return b"<!doctype html><html><head><title>Many</title></head><body>" + items + b"</body>"


def _nested(depth: int) -> bytes:
    return (
        b"<!doctype html><html><head><title>Deep</title></head><body>"
        + b"<div>" * depth + b"bottom" + b"</div>" * depth + b"</body></html>"
    )  # fmt: skip


def hostile_web() -> dict[str, Scenario]:
    """Every hostile response by path (the bomb, endless and big bodies of
    :func:`hostile_scenarios` included)."""
    table = dict(hostile_scenarios())
    table["/deflate-bomb"] = Scenario(
        response("200 OK", [*TEXT, ("Content-Encoding", "deflate")], deflate_bomb())
    )
    table["/drip"] = Scenario(response("200 OK", TEXT, length=False), close=True, stream=_drip)
    table["/silent"] = Scenario(b"", stall=600)
    table["/loop"] = Scenario(response("302 Found", [("Location", "/loop")]))
    for i in range(40):
        table[f"/chain/{i}"] = Scenario(response("302 Found", [("Location", f"/chain/{i + 1}")]))
    table["/chain/40"] = Scenario(response("200 OK", TEXT, HTML))
    table["/bad-status"] = Scenario(b"HTTP/1.1 two hundred OK\r\nContent-Length: 2\r\n\r\nhi",
                                    close=True)  # fmt: skip
    table["/not-http"] = Scenario(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", close=True)
    table["/bad-headers"] = Scenario(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nthis line has no colon\r\n"
        b"X-Nul: a\x00b\r\nX-Long: " + b"y" * 200_000 + b"\r\nContent-Length: "
        + str(len(HTML)).encode() + b"\r\n\r\n" + HTML,
        close=True,
    )  # fmt: skip
    table["/unknown-charset"] = Scenario(
        response("200 OK", [("Content-Type", "text/html; charset=x-no-such-charset")],
                 b"<html><head><title>Charset</title></head><body>ok</body></html>")
    )  # fmt: skip
    table["/lying-charset"] = Scenario(
        response("200 OK", TEXT, "<html><head><title>Минск</title></head><body>Свабода"
                 "</body></html>".encode("cp1251"))
    )  # fmt: skip
    table["/length-too-long"] = Scenario(
        response("200 OK", [*TEXT, ("Content-Length", str(len(HTML) + 5000))], HTML,
                 length=False),
        close=True,
    )  # fmt: skip
    table["/length-too-short"] = Scenario(
        response("200 OK", [*TEXT, ("Content-Length", "100")], HTML, length=False)
    )
    table["/reset"] = Scenario(
        response("200 OK", [*TEXT, ("Content-Length", str(2 * len(HTML)))], HTML,
                 length=False),
        reset=True,
    )  # fmt: skip
    table["/many-links"] = Scenario(response("200 OK", TEXT, _many_links(100_000)))
    table["/nested"] = Scenario(response("200 OK", TEXT, _nested(100_000)))
    return table


HOSTILE = [
    "/bomb", "/deflate-bomb", "/endless", "/big", "/drip", "/silent", "/loop", "/chain/0",
    "/bad-status", "/not-http", "/bad-headers", "/unknown-charset", "/lying-charset",
    "/length-too-long", "/length-too-short", "/reset", "/many-links", "/nested",
]  # fmt: skip


def _run(home: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    out = home.parent / f"run-{len(list(home.parent.glob('run-*')))}.json"
    subprocess.run(
        [sys.executable, "-c", WRAPPER, str(out), LINKARCHIVE, "--home", str(home), *args],
        cwd=ROOT, env=env, timeout=800, check=True,
    )  # fmt: skip
    return json.loads(out.read_text())


def _links(home: Path) -> dict[str, dict[str, Any]]:
    with session_scope(paths(home).database_url) as session:
        out = {}
        for link in session.scalars(select(Link)):
            outcome = session.scalars(
                select(CrawlOutcome).where(CrawlOutcome.link_id == link.id)
                .order_by(CrawlOutcome.id.desc())
            ).first()  # fmt: skip
            out[link.label] = {
                "status": link.status,
                "error": outcome.error if outcome else None,
                "http_status": outcome.http_status if outcome else None,
                "captured": link.last_capture_id is not None,
            }
        return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("hostile")
    home = base / "home"
    with (
        WireServer(hostile_web()) as server,
        WireServer(
            {"/secure": Scenario(response("200 OK", TEXT, HTML))}, tls=self_signed_tls(base)
        ) as secure,  # fmt: skip
    ):
        rows = [("Hostile", path, server.base_url + path) for path in HOSTILE]
        rows += [
            ("Hostile", "/unresolvable", "http://unresolvable-host.invalid/report"),
            ("Hostile", "/refused", f"http://127.0.0.1:{free_port()}/report"),
            ("Secure", "/self-signed", secure.base_url + "/secure"),
        ]
        seeds = base / "seeds.csv"
        seeds.write_text("country,city,kind,label,url\n" + "".join(
            f"Germany,{city},report,{label},{url}\n" for city, label, url in rows))  # fmt: skip
        env = {
            **os.environ,
            "LINKARCHIVE_ARCHIVE_MAXSIZE": str(64 * MIB),
            "LINKARCHIVE_DOWNLOAD_TIMEOUT": str(TIMEOUT),
            "LINKARCHIVE_RETRY_TIMES": "1",
            "LINKARCHIVE_BROWSER": "never",
            # .invalid never resolves (RFC 6761); loopback is the only other host allowed
            "LINKARCHIVE_ALLOWED_HOSTS": "127.0.0.1,unresolvable-host.invalid",
        }
        imported = _run(home, env, "seeds", "import", str(seeds))
        assert imported["returncode"] == 0, imported["stderr"][-3000:]
        crawl = _run(home, env, "crawl")
        first = _links(home)
        allowed = {**env, "LINKARCHIVE_UNTRUSTED_TLS": f"127.0.0.1:{secure.port}"}
        again = _run(home, allowed, "crawl", "--city", "Secure")
    with session_scope(paths(home).database_url) as session:
        files = [Path(f.path) for f in session.scalars(select(WarcFile))]
    return {"home": home, "crawl": crawl, "again": again, "first": first,
            "last": _links(home), "files": files}  # fmt: skip


def test_the_crawl_finishes_without_a_traceback(hostile: dict[str, Any]) -> None:
    for run in (hostile["crawl"], hostile["again"]):
        assert run["returncode"] == 0, run["stderr"][-4000:]
        assert "Traceback" not in run["stdout"] + run["stderr"]


def test_no_process_passes_one_gigabyte(hostile: dict[str, Any]) -> None:
    assert 0 < hostile["crawl"]["peak_rss_bytes"] < GB


def test_every_warc_file_passes_warcio_check(hostile: dict[str, Any]) -> None:
    assert hostile["files"]
    for path in hostile["files"]:
        check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", "-v", str(path)],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
        assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]


def test_every_link_gets_an_outcome(hostile: dict[str, Any]) -> None:
    links = hostile["first"]
    assert len(links) == len(HOSTILE) + 3
    assert all(link["status"] != "pending" for link in links.values()), links


EXPECTED = {  # label: (status, words its error contains, archived)
    "/bomb": ("alive", None, True),
    "/deflate-bomb": ("alive", None, True),
    "/endless": ("alive", "LINKARCHIVE_ARCHIVE_MAXSIZE", True),
    "/big": ("alive", "LINKARCHIVE_ARCHIVE_MAXSIZE", True),
    "/drip": ("error", f"timed out: no complete response within {TIMEOUT} s", False),
    "/silent": ("error", "timed out", False),
    "/loop": ("error", "a redirect loop", True),
    "/chain/0": ("error", "more than 20 redirects", True),
    "/bad-status": ("error", "malformed response: non-integer status code", False),
    "/not-http": ("error", "malformed response", False),
    "/bad-headers": ("error", "closed the connection before a complete response head", False),
    "/unknown-charset": ("alive", None, True),
    "/lying-charset": ("alive", None, True),
    "/length-too-long": ("error", "broke off the response; the part received is archived", True),
    "/length-too-short": ("alive", None, True),
    "/reset": ("error", "broke off the response; the part received is archived", True),
    "/many-links": ("alive", None, True),
    "/nested": ("alive", None, True),
    # Failures: counted at once, dead only once confirmed (README, "Statuses").
    "/unresolvable": ("failing", "host name not found (DNS): unresolvable-host.invalid", False),
    "/refused": ("failing", "connection refused by 127.0.0.1:", False),
    "/self-signed": ("error", "TLS certificate not trusted", False),
}


def test_the_status_and_error_say_what_happened(hostile: dict[str, Any]) -> None:
    links = hostile["first"]
    for label, (status, words, archived) in EXPECTED.items():
        link = links[label]
        assert link["status"] == status, (label, link)
        if words is None:
            assert link["error"] is None, (label, link)
        else:
            assert words in (link["error"] or ""), (label, link)
            assert "Failure" not in link["error"] and "<" not in link["error"], (label, link)
        assert link["captured"] is archived, (label, link)


def test_a_self_signed_site_is_archived_once_the_operator_allows_it(
    hostile: dict[str, Any],
) -> None:
    link = hostile["last"]["/self-signed"]
    assert link["status"] == "alive" and link["captured"] and link["error"] is None, link


def test_cut_responses_are_marked_as_the_warc_standard_says(hostile: dict[str, Any]) -> None:
    """The archive limit cuts with ``WARC-Truncated: length``; a server that broke off the
    body leaves what it sent, marked ``disconnect``."""
    from archive import iter_records

    truncated: dict[str, set[str]] = {}
    for path in hostile["files"]:
        for _, record in iter_records(path):
            if record.rec_type in ("response", "revisit"):  # a cut body can repeat another
                label = "/" + (record.target_uri or "").split("/", 3)[-1]
                mark = record.get("WARC-Truncated")
                truncated.setdefault(label, set()).add(mark or "")
    assert truncated["/endless"] == {"length"} and truncated["/big"] == {"length"}
    assert truncated["/reset"] == {"disconnect"}
    assert truncated["/length-too-long"] == {"disconnect"}
    assert truncated["/bomb"] == {""}  # a bomb is small on the wire: archived whole
