"""Hostile pages in the browser: a script that never ends, pages that allocate without end
(JavaScript objects, and ArrayBuffers outside the JavaScript heap), a popup storm.

One real crawl (``browser="always"``, Debian's Chromium) of those pages and one harmless
page. The crawl must finish, each link's error must say what happened, the harmless page
must be archived as usual, every WARC file must pass ``warcio check``, and no process of
the crawl (Chromium's renderers included) may pass 1 GB RSS: a sampler reads the RSS of
every process under this one ten times a second.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from pipeline.catalog import session_scope
from pipeline.catalog.models import CrawlOutcome, Link, WarcFile
from pipeline.config import paths

CHROMIUM = Path("/usr/bin/chromium")
GB = 1_000_000_000
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"),
]

PAGES = {
    "/script-loop": "<title>Loop</title><p>before</p><script>for (;;) {}</script>",
    "/late-loop": (
        "<title>Late loop</title><p>Rally in Vilnius</p>"
        "<script>setTimeout(() => { for (;;) {} }, 300)</script>"
    ),
    "/allocate": (
        "<title>Allocate</title><p>growing</p><script>const kept = [];"
        "setInterval(() => { for (let i = 0; i < 20; i++) kept.push(new Array(1e6).fill(i)) },"
        " 5)</script>"
    ),
    "/buffers": (
        "<title>Buffers</title><p>buffers</p><script>const kept = [];"
        "setInterval(() => { const b = new Uint8Array(64 << 20); b.fill(7); kept.push(b) },"
        " 5)</script>"
    ),
    "/popups": (
        "<title>Popups</title><p>Solidarity chain in Riga</p><script>"
        "setInterval(() => { for (let i = 0; i < 10; i++) window.open('/popup?' + i) }, 10)"
        "</script>"
    ),
    "/popup": "<title>Popup</title><script>window.open('/popup?again')</script>",
    "/fine": "<title>Fine</title><p>Candles for the prisoners in Tartu</p>",
}


class Site:
    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                page = PAGES.get(self.path.split("?")[0])
                body = f"<!DOCTYPE html>{page}".encode() if page else b"not here"
                self.send_response(200 if page else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PeakRss:
    """The largest RSS seen of each process under this one, sampled every 0.1 s."""

    def __init__(self) -> None:
        self.peaks: dict[int, tuple[int, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.1):
            for proc in me.children(recursive=True):
                try:
                    rss = proc.memory_info().rss
                    if rss > self.peaks.get(proc.pid, (0, ""))[0]:
                        self.peaks[proc.pid] = (rss, " ".join(proc.cmdline())[:120])
                except psutil.Error:
                    pass

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def hostile(
    prefect_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    from flows.crawl import crawl_flow

    base = tmp_path_factory.mktemp("hostile-browser")
    home = base / "home"
    site = Site()
    labels = [p for p in PAGES if p != "/popup"]
    seeds = base / "seeds.csv"
    seeds.write_text("country,city,kind,label,url\n" + "".join(
        f"Estonia,Tartu,report,{path},{site.url}{path}\n" for path in labels))  # fmt: skip
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LINKARCHIVE_BROWSER_PAGE_SECONDS", "8")
        with PeakRss() as rss:
            result = crawl_flow(source=str(seeds), home=str(home), browser="always")
    site.close()
    with session_scope(paths(home).database_url) as session:
        links = {}
        for link in session.scalars(select(Link)):
            outcome = session.scalars(
                select(CrawlOutcome).where(CrawlOutcome.link_id == link.id)
            ).one()  # fmt: skip
            links[link.label] = {"status": link.status, "error": outcome.error,
                                 "captured": link.last_capture_id is not None}  # fmt: skip
        files = [Path(f.path) for f in session.scalars(select(WarcFile))]
    yield {"result": result, "links": links, "files": files, "rss": rss.peaks}


def test_the_crawl_finishes_with_an_outcome_for_every_page(hostile: dict[str, Any]) -> None:
    assert hostile["result"]["links_done"] == len(PAGES) - 1
    assert set(hostile["links"]) == set(PAGES) - {"/popup"}


def test_no_process_passes_one_gigabyte(hostile: dict[str, Any]) -> None:
    peaks = hostile["rss"]
    assert any("chromium" in command for _, command in peaks.values())  # it was watched
    over = {pid: p for pid, p in peaks.items() if p[0] >= GB}
    assert not over, over


def test_each_error_says_what_happened(hostile: dict[str, Any]) -> None:
    links = hostile["links"]
    assert links["/fine"]["status"] == "alive" and links["/fine"]["error"] is None
    for label in ("/script-loop", "/late-loop"):
        assert "took longer than" in (links[label]["error"] or ""), links[label]
    for label in ("/allocate", "/buffers"):  # the heap limit, or the renderer guard
        assert "memory" in (links[label]["error"] or ""), links[label]
    assert "LINKARCHIVE_BROWSER_MAX_RSS" in links["/buffers"]["error"]
    popups = links["/popups"]
    assert popups["status"] == "alive" and popups["captured"], popups


def test_every_warc_file_passes_warcio_check(hostile: dict[str, Any]) -> None:
    for path in hostile["files"]:
        check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", str(path)],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
        assert check.returncode == 0, check.stdout[-2000:]


def test_a_popup_storm_opens_no_window(hostile: dict[str, Any]) -> None:
    """The storm's page is archived; none of the hundreds of windows it asked for was
    opened, so nothing of them was fetched or archived."""
    from archive import iter_records

    targets = [record.target_uri or "" for path in hostile["files"]
               for _, record in iter_records(path)]  # fmt: skip
    assert any(t.endswith("/popups") for t in targets)
    assert not [t for t in targets if "/popup?" in t]
