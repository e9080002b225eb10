"""The crawl engine: long-lived units of whole hosts, polite across processes, indexed
while they run, with progress per page."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from pipeline.catalog import session_scope
from pipeline.catalog.fulltext import SearchQuery, search
from pipeline.catalog.models import Capture, CrawlRun, Link
from pipeline.config import paths
from pipeline.progress import read_progress

pytestmark = pytest.mark.e2e

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
PAGES_PER_HOST = 16
PER_HOST = 2  # LINKARCHIVE_CONCURRENT_REQUESTS_PER_HOST for these crawls
DELAY = 0.2  # seconds each response takes: the crawl lasts long enough to watch


class Site:
    """Report pages with an image each on three loopback hosts; logs requests in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.busiest_moment = 0  # the most requests in flight on all hosts at once
        self.servers: list[ThreadingHTTPServer] = []
        self.port = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                host = self.server.server_address[0]
                with site.lock:
                    site.in_flight[host] += 1
                    site.most[host] = max(site.most[host], site.in_flight[host])
                    site.busiest_moment = max(site.busiest_moment, sum(site.in_flight.values()))
                try:
                    time.sleep(DELAY)
                    self._answer(host)
                finally:
                    with site.lock:
                        site.in_flight[host] -= 1

            def _answer(self, host: str) -> None:
                number = self.path.rsplit("/", 1)[-1].split(".")[0]
                if self.path.startswith("/img/"):
                    body = b"\x89PNG\r\n\x1a\n" + f"{host}-{number}".encode() * 50
                    kind = "image/png"
                else:
                    words = " ".join(["Solidarity rally of women in white"] * 40)
                    body = (
                        f"<html lang='en'><head><title>Rally {host} {number}</title>"
                        f"<meta name='author' content='Reporter {number}'></head><body>"
                        f"<h1>Rally {number}</h1><p>{words} Blumenkette{number}</p>"
                        f"<img src='/img/{number}.png'></body></html>"
                    ).encode()
                    kind = "text/html; charset=utf-8"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def start(self) -> None:
        first = ThreadingHTTPServer((HOSTS[0], 0), self.handler())
        self.port = first.server_address[1]
        self.servers = [first] + [
            ThreadingHTTPServer((host, self.port), self.handler()) for host in HOSTS[1:]
        ]
        for server in self.servers:
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("LINKARCHIVE_ALLOWED_HOSTS", ",".join(HOSTS))
    monkeypatch.setenv("LINKARCHIVE_CONCURRENT_REQUESTS_PER_HOST", str(PER_HOST))
    monkeypatch.setenv("LINKARCHIVE_WARC_ROTATE_SECONDS", "0.5")
    served = Site()
    served.start()
    yield served
    served.stop()


def test_units_keep_hosts_polite_and_are_indexed_while_they_run(
    site: Site, prefect_server: None, tmp_path: Path
) -> None:
    from flows.crawl import PROCESSES, crawl_flow

    seeds = tmp_path / "seeds.csv"
    rows = [
        f"Germany,Berlin,report,{host} {n},http://{host}:{site.port}/report/{n}.html"
        for host in HOSTS
        for n in range(PAGES_PER_HOST)
    ]
    seeds.write_text("country,city,kind,label,url\n" + "\n".join(rows) + "\n", encoding="utf-8")
    home = tmp_path / "home"
    where = paths(home)
    outcome: dict[str, Any] = {}
    crawl = threading.Thread(
        target=lambda: outcome.update(crawl_flow(source=str(seeds), home=str(home))), daemon=True
    )
    crawl.start()
    # While the crawl runs: captures reach the catalog (and search) and progress is reported.
    seen_during: list[tuple[int, int, int]] = []  # (captures, pages found by search, progress)
    deadline = time.monotonic() + 240
    while crawl.is_alive() and time.monotonic() < deadline:
        time.sleep(0.25)
        if not (home / "catalog.sqlite").exists():
            continue
        with session_scope(where.database_url) as session:
            run_id = session.scalar(select(func.max(CrawlRun.id)))
            if run_id is None:
                continue
            captures = session.scalar(select(func.count(Capture.id))) or 0
            found = search(session, SearchQuery(text="Blumenkette*"), facets=False).total
        seen_during.append((captures, found, read_progress(where.jobs, run_id).pages))
    crawl.join(60)
    assert not crawl.is_alive()
    assert outcome["status"] == "finished"
    total = len(rows)
    assert outcome["links_done"] == total

    # Indexed as it went: some pages searchable, and progress reported, before the end.
    assert any(0 < found < total for _, found, _ in seen_during), seen_during
    assert any(0 < pages < total for _, _, pages in seen_during), seen_during
    with session_scope(where.database_url) as session:
        assert search(session, SearchQuery(text="Blumenkette*"), facets=False).total == total
        assert set(session.scalars(select(Link.status))) == {"alive"}
        files_by_host: dict[str, set[str]] = defaultdict(set)
        for url, warc in session.execute(select(Capture.url, Capture.warc_file)):
            host = re.match(r"http://([\d.]+):", url)
            if host:
                files_by_host[host[1]].add(warc)
    assert read_progress(where.jobs, outcome["run_id"]).pages == total

    # Politeness held: never more than PER_HOST requests in flight on one host, though
    # the crawl as a whole had more in flight, and each host had one crawl process.
    assert max(site.most.values()) <= PER_HOST, site.most
    assert site.busiest_moment > PER_HOST
    writers = {
        host: {re.search(r"-(\d+)~", name)[1] for name in names}  # type: ignore[index]
        for host, names in files_by_host.items()
    }
    assert set(writers) == set(HOSTS)
    assert all(len(pids) == 1 for pids in writers.values()), writers
    assert len(set().union(*writers.values())) == min(PROCESSES, len(HOSTS))  # one per unit


def test_warc_files_close_sooner_early_in_a_crawl_and_at_most_each_cap() -> None:
    from spiders.extensions import WarcRotation

    rotation = WarcRotation(store=None, seconds=60)  # type: ignore[arg-type]
    ages = []
    for crawl_age in (0, 5, 100, 300, 5000):
        rotation.started = time.monotonic() - crawl_age
        ages.append(round(rotation.age_limit()))
    assert ages == [1, 1, 10, 30, 60]
