"""Failures are recorded, never fatal: a bad link, and a whole crawl unit that cannot finish."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, CrawlOutcome, CrawlRun, Link
from pipeline.config import paths

pytestmark = pytest.mark.e2e


def _seed_csv(tmp_path: Path, rows: list[str]) -> str:
    source = tmp_path / "seeds.csv"
    source.write_text("country,city,kind,label,url\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(source)


def test_failed_links_are_recorded_and_the_rest_archived(
    world: Any, prefect_server: None, tmp_path: Path
) -> None:
    from flows.crawl import crawl_flow

    source = _seed_csv(
        tmp_path,
        [
            f"Latvia,Riga,report,link report,{world.url('news', '/lv/riga-solidaritate')}",
            "Poland,Warsaw,report,refused,http://127.0.0.1:9/closed-port",
            "Poland,Krakow,report,off-limits,http://example.invalid/report",
        ],
    )
    home = tmp_path / "home"
    result = crawl_flow(source=source, home=str(home))
    assert result["status"] == "finished"
    assert result["links_done"] == 3
    with session_scope(paths(home).database_url) as session:
        status = {link.label: link.status for link in session.scalars(select(Link))}
        errors = {o.link_id: o.error for o in session.scalars(select(CrawlOutcome))}
    # A refused connection is a failure (dead once confirmed); a host the allowlist leaves
    # out is our choice, an error.
    assert status == {"link report": "alive", "refused": "failing", "off-limits": "error"}
    assert any("LINKARCHIVE_ALLOWED_HOSTS" in (e or "") for e in errors.values())


def test_a_unit_that_cannot_finish_fails_alone(
    world: Any, prefect_server: None, tmp_path: Path
) -> None:
    from flows.crawl import crawl_flow

    source = _seed_csv(
        tmp_path,
        [f"Norway,Oslo,report,link report,{world.url('news', '/no/oslo-solidaritet')}"],
    )
    home = tmp_path / "home"
    # A timeout no subprocess can meet: every attempt is killed, then the unit fails.
    result = crawl_flow(source=source, home=str(home), unit_timeout=0.01)
    assert result["status"] == "partial"
    with session_scope(paths(home).database_url) as session:
        run = session.scalars(select(CrawlRun)).one()
        link = session.scalars(select(Link)).one()
        outcome = session.scalars(select(CrawlOutcome)).one()
    assert run.units_failed == 1
    assert link.status == "error"
    assert outcome.error == "crawl unit failed"


@pytest.fixture
def half_hanging_site() -> Any:
    """A site on 127.0.0.1 whose /report answers and whose /never never does."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/never":
                release.wait(120)
                return
            body = b"<html><head><title>Rally in Riga</title></head><body>ok</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    release.set()
    server.shutdown()
    server.server_close()


def test_a_killed_unit_keeps_what_it_archived(
    prefect_server: None, tmp_path: Path, half_hanging_site: str
) -> None:
    from flows.crawl import crawl_flow

    source = _seed_csv(
        tmp_path,
        [
            f"Latvia,Riga,report,link report,{half_hanging_site}/report",
            f"Poland,Warsaw,report,hangs,{half_hanging_site}/never",
        ],
    )
    home = tmp_path / "home"
    # Same host, so one unit: the hanging link keeps the crawl process alive until the
    # flow kills it (SIGKILL) at the timeout, with the report already written to its WARC.
    result = crawl_flow(source=source, home=str(home), unit_timeout=8)
    assert result["status"] == "partial"
    warcs = paths(home).warcs
    assert not list(warcs.glob("*.open")), "killed crawls' files are recovered"
    with session_scope(paths(home).database_url) as session:
        status = {link.label: link.status for link in session.scalars(select(Link))}
        captured = set(session.scalars(select(Capture.url)))
    assert status == {"link report": "alive", "hangs": "error"}
    assert f"{half_hanging_site}/report" in captured
    # Each retry indexed what the killed attempt archived and crawled only the rest.
    units = paths(home).jobs / f"run{result['run_id']:05d}"
    attempts = {
        path.name.split(".")[0]: [json.loads(line)["url"] for line in path.read_text().splitlines()]
        for path in sorted(units.glob("unit001-a*.links.jsonl"))
    }
    assert attempts == {
        "unit001-a1": [f"{half_hanging_site}/report", f"{half_hanging_site}/never"],
        "unit001-a2": [f"{half_hanging_site}/never"],
        "unit001-a3": [f"{half_hanging_site}/never"],
    }
