"""Benchmarks: ``make bench`` (or ``python -m bench.run``) rewrites docs/PERFORMANCE.md.

Measures the WARC writer and reader, metadata extraction per page, the whole crawl flow
over the replica world side by side with ``wget --warc-file`` on the same links, search
latency, and the crawl engine against wget and bare Scrapy on a synthetic site
(``bench/crawlbench.py``). Everything runs on loopback addresses. Figures are wall-clock
on whatever machine runs this.

``--only crawl`` runs the crawl-engine section alone (the others read "not run"),
``--only others`` everything but it; ``--quick`` uses small crawl sizes and one run;
``--runs N`` and ``--rss-sizes A,B`` override the crawl section's runs and RSS sizes.
``--only search`` rewrites the search section alone (the replica world crawled anew, and
synthetic catalogs of 20,000 and 200,000 links on SQLite, 20,000 on PostgreSQL when
installed; ``--search-sizes 20000,200000,1000000`` for the million,
``--search-postgres-sizes`` for PostgreSQL's).
``--only get`` rewrites the section on ``get`` from a 5 GB archive alone
(``bench/getbench.py``); a full run keeps the one already written.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BREAKDOWN: list[list[str]] = []  # filled by bench_crawl
SEARCH_REPLICA: list[list[str]] = []  # filled by bench_crawl: search over what it archived
OUT = ROOT / "docs" / "PERFORMANCE.md"


def _html_bodies(count: int, size: int) -> list[bytes]:
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(3000)]  # fmt: skip
    bodies = []
    for _ in range(count):
        parts, n = [], 0
        while n < size:
            line = f"<p>{' '.join(rng.choice(words) for _ in range(12))}</p>\n"
            parts.append(line)
            n += len(line)
        bodies.append("".join(parts).encode()[:size])
    return bodies


def bench_warc(n: int = 2000, size: int = 50_000) -> list[list[str]]:
    """Write n request+response pairs of `size`-byte bodies, then read them all back."""
    from archive import RecordFactory, RotatingWarcWriter, iter_records, record_id

    bodies = _html_bodies(50, size)
    rows = []
    for fsync in (False, True):
        folder = Path(tempfile.mkdtemp(prefix="bench-warc-"))
        factory = RecordFactory()
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Server", "bench")]
        started = time.perf_counter()
        with RotatingWarcWriter(folder, factory=factory, fsync=fsync) as writer:
            for i in range(n):
                url = f"http://127.0.0.1/page/{i}"
                resp = factory.response(url, 200, "OK", "HTTP/1.1", headers, bodies[i % 50])
                req = factory.request(
                    url, "GET", f"/page/{i}", "HTTP/1.1", [("Host", "127.0.0.1")],
                    concurrent_to=record_id(resp),
                )  # fmt: skip
                writer.write_many([resp, req])
            files = writer.close()
        took = time.perf_counter() - started
        rows.append(["write", f"fsync={'on' if fsync else 'off'}", f"{n * size / took / 1e6:.1f}",
                     f"{n / took:.0f}"])  # fmt: skip
        if fsync:
            started = time.perf_counter()
            count = sum(1 for f in files for _ in iter_records(f))
            took = time.perf_counter() - started
            rows.append(["read (iter_records)", "", f"{n * size / took / 1e6:.1f}",
                         f"{count / 2 / took:.0f}"])  # fmt: skip
        shutil.rmtree(folder)
    return rows


def _fetch(url: str, tries: int = 3) -> tuple[bytes, str]:
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
                body = response.read()
                if response.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                return body, response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:  # the replica's flaky page answers 503 first
            if exc.code != 503 or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def bench_extract(world: object, repeat: int = 5) -> list[list[str]]:
    """Median extraction time per replica page (HTML and the PDF)."""
    from pipeline.extract import extract_metadata
    from pipeline.replica.content import LINKS

    rows = []
    for spec in LINKS:
        if spec.status != 200:
            continue
        url = world.url(spec.site, spec.final_path)  # type: ignore[attr-defined]
        body, content_type = _fetch(url)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            extract_metadata(body, url, content_type)
            times.append(time.perf_counter() - started)
        rows.append((statistics.median(times), spec.path, len(body)))
    rows.sort()
    times_ms = [t * 1000 for t, _, _ in rows]
    return [
        ["pages", str(len(rows))],
        ["median ms/page", f"{statistics.median(times_ms):.1f}"],
        ["slowest ms/page", f"{max(times_ms):.1f} ({rows[-1][1]})"],
    ]


def _crawl_replica(world: object) -> tuple[Path, dict, float]:
    """A new data home with the crawl flow's catalog of every replica link, the flow's
    result and its seconds."""
    from flows.crawl import crawl_flow

    os.environ["LINKARCHIVE_ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["LINKARCHIVE_ALLOW_ADDRESSES"] = "127.0.0.0/8"
    os.environ.setdefault("LINKARCHIVE_AUTOTHROTTLE_START_DELAY", "0.05")
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    started = time.perf_counter()
    result = crawl_flow(source=world.index_url, home=str(home))  # type: ignore[attr-defined]
    return home, result, time.perf_counter() - started


def replica_search() -> str:
    """The search table over the replica world's catalog, crawled anew."""
    from pipeline.config import paths
    from pipeline.replica import ReplicaWorld

    with ReplicaWorld() as world:
        home, _, _ = _crawl_replica(world)
    try:
        rows = _search_latency(paths(home).database_url, SEARCHES)
    finally:
        shutil.rmtree(home)
    return table(["query", "results", "p50 ms", "p95 ms"], rows)


def bench_crawl(world: object) -> list[list[str]]:
    """The crawl flow over every replica link, and wget over the same links."""
    from prefect import flow

    from pipeline.replica.content import LINKS

    @flow
    def warm_up() -> None:
        """Nothing: starting it starts Prefect's temporary API server."""

    started = time.perf_counter()
    warm_up()
    server_start = time.perf_counter() - started

    home, result, took = _crawl_replica(world)
    size = sum(p.stat().st_size for p in (home / "warcs").glob("*.warc.gz"))
    results = [json.loads(p.read_text()) for p in (home / "jobs").glob("run*/*.result.json")]
    scrapy = [r["stats"]["elapsed_time_seconds"] for r in results]
    rows = [["linkarchive crawl flow (Prefect + Scrapy subprocesses)",
             f"{result['links_total']}", f"{result['captures']}", f"{took:.1f}",
             f"{size / 1e3:.0f}"]]  # fmt: skip
    BREAKDOWN.extend([
        ["Prefect temporary API server start (before the flow, not in the row above)",
         f"{server_start:.1f}"],
        [f"crawl processes ({len(scrapy)}, in parallel): Scrapy's own elapsed time, longest",
         f"{max(scrapy):.1f}"],
        ["the rest of the flow: seed import, process start-up, indexing, Prefect task calls",
         f"{took - max(scrapy):.1f}"],
    ])  # fmt: skip
    from pipeline.config import paths

    SEARCH_REPLICA.extend(_search_latency(paths(home).database_url, SEARCHES))
    shutil.rmtree(home)

    wget = shutil.which("wget")
    if wget:
        folder = Path(tempfile.mkdtemp(prefix="bench-wget-"))
        urls = folder / "urls.txt"
        unique = sorted({world.url(s.site, s.path) for s in LINKS})  # type: ignore[attr-defined]
        urls.write_text("\n".join(unique) + "\n")
        started = time.perf_counter()
        subprocess.run(
            [wget, "-q", "--page-requisites", "--span-hosts", "--tries=3",
             "--warc-file", str(folder / "wget"), "--no-warc-compression", "-P",
             str(folder / "files"), "-i", str(urls)],
            check=False,
        )  # fmt: skip
        took = time.perf_counter() - started
        warc = folder / "wget.warc"
        from archive import iter_records

        responses = sum(1 for _, r in iter_records(warc, strict=False) if r.rec_type == "response")
        rows.append(["wget --page-requisites --warc-file (no galleries, no metadata)",
                     str(len(unique)), str(responses), f"{took:.1f}",
                     f"{warc.stat().st_size / 1e3:.0f} (uncompressed)"])  # fmt: skip
        shutil.rmtree(folder)
    return rows


def _chromium_rss() -> int:
    """Memory of every Chromium process on the machine now: the sum of their PSS."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if "chrom" not in (entry / "comm").read_text():
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def bench_browser(world: object) -> list[list[str]]:
    """Browser capture: the replica's 25 links with --browser never and always, and the
    social platform's four posts in auto mode (each rendered), with Chromium's peak RSS."""
    import threading

    from flows.crawl import crawl_flow
    from pipeline.replica import social

    os.environ["LINKARCHIVE_ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["LINKARCHIVE_ALLOW_ADDRESSES"] = "127.0.0.0/8"
    rows = []
    runs = [
        ("replica links, --browser never", world.index_url, "never", 1),  # type: ignore[attr-defined]
        ("replica links, --browser always", world.index_url, "always", 1),  # type: ignore[attr-defined]
        ("the same, 2 pages per host at once", world.index_url, "always", 2),  # type: ignore[attr-defined]
        ("social posts, --browser auto (all rendered)",
         world.url(social.SITE, social.LIST_PATH), "auto", 1),  # type: ignore[attr-defined]
    ]  # fmt: skip
    for label, source, mode, per_host in runs:
        os.environ["LINKARCHIVE_BROWSER_PAGES_PER_HOST"] = str(per_host)
        home = Path(tempfile.mkdtemp(prefix="bench-browser-"))
        peak, done = [0], threading.Event()

        def sample(peak: list[int] = peak, done: threading.Event = done) -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], _chromium_rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        result = crawl_flow(source=source, home=str(home), browser=mode)
        took = time.perf_counter() - started
        done.set()
        sampler.join()
        from sqlalchemy import func, select

        from pipeline.catalog import session_scope
        from pipeline.catalog.models import Capture
        from pipeline.config import paths

        with session_scope(paths(home).database_url) as session:
            shots = session.scalar(
                select(func.count(Capture.id)).where(Capture.role == "screenshot")
            )
        rate = f"{shots / took:.2f}" if shots else "—"
        rows.append([label, str(result["links_total"]), str(shots), f"{took:.1f}", rate,
                     f"{peak[0] / 1e6:.0f}" if peak[0] else "—"])  # fmt: skip
        shutil.rmtree(home)
    os.environ.pop("LINKARCHIVE_BROWSER_PAGES_PER_HOST", None)
    return rows


SEARCHES = ("Blumen", "Belarus", '"Frauen in Weiß"', "Blumen OR flowers", "solidar*",
            "Belarus -Berlin")  # fmt: skip
SEARCH_SIZES = (20_000, 200_000)  # --search-sizes adds 1,000,000 (about 15 minutes to build)
SEARCH_HEADING = "## Full-text search (`pipeline/catalog/fulltext.py`)"
REPLICA_INTRO = "Over the replica world's catalog, as the crawl flow builds it:"


def _percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with ``share`` of them at or below."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))]


def _results(result: object) -> str:
    return f"{result.total:,}"  # type: ignore[attr-defined]


def _search_latency(url: str, queries: tuple[str, ...], repeat: int = 20) -> list[list[str]]:
    """p50 and p95 milliseconds per query (rows 1-50 with snippets, every facet and the
    total), over ``repeat`` runs after a warm-up."""
    from pipeline.catalog import session_scope
    from pipeline.catalog.fulltext import SearchQuery, search

    rows = []
    for text in (None, *queries):
        times, results = [], ""
        for _ in range(repeat + 1):
            with session_scope(url) as session:
                started = time.perf_counter()
                result = search(session, SearchQuery(text=text and _query_text(text)))
                times.append(time.perf_counter() - started)
                results = _results(result)
        rows.append([text or "(no text: newest first)", results,
                     f"{_percentile(times[1:], 0.5) * 1000:.1f}",
                     f"{_percentile(times[1:], 0.95) * 1000:.1f}"])  # fmt: skip
    return rows


def _agreement(url: str, queries: tuple[str, ...]) -> dict[str, str]:
    """Per query: at how many of the first 50 ranks the score equals that of scoring every
    match exactly (as FTS5 did), not only the index's best few hundred."""
    from pipeline.catalog import fulltext, session_scope
    from pipeline.catalog.fulltext import SearchQuery, search

    found = {}
    window = fulltext.RERANK_MIN, fulltext.RERANK_MAX
    for text in queries:
        query = SearchQuery(text=_query_text(text), limit=50)
        with session_scope(url) as session:
            ours = [row["rank"] for row in search(session, query, facets=False).rows]
            fulltext.RERANK_MIN = fulltext.RERANK_MAX = 10**9
            try:
                every = [row["rank"] for row in search(session, query, facets=False).rows]
            finally:
                fulltext.RERANK_MIN, fulltext.RERANK_MAX = window
        found[text] = f"{sum(a == b for a, b in zip(ours, every, strict=True))} of {len(every)}"
    return found


def synthetic_catalog(url: str, documents: int, chunk: int = 20_000) -> None:
    """A catalog of ``documents`` links in 50 cities, each with a capture and page metadata
    (a title of 8 and a text of 300 words drawn from 2,010, publication months spread over
    2020), and their search documents; built ``chunk`` links per transaction."""
    from sqlalchemy import insert, update

    from pipeline.catalog import session_scope
    from pipeline.catalog.fulltext import refresh_documents
    from pipeline.catalog.models import Capture, City, Country, Link, PageMetadataRow

    rng = random.Random(2)
    vocabulary = [w.decode() for w in b" ".join(_html_bodies(1, 20_000)).split()[:2000]]
    vocabulary += ["Blumen", "flowers", "Belarus", "Frauen", "in", "Weiß", "solidarity",
                   "Berlin", "München", "Solidarität"]  # fmt: skip
    with session_scope(url) as session:
        session.add(Country(id=1, name="Germany", code="DE", original_name="Deutschland"))
        session.add_all(City(id=i, country_id=1, name=f"City {i}", original_name=f"Stadt {i}")
                        for i in range(1, 51))  # fmt: skip
    now = datetime(2026, 1, 1)
    for first in range(1, documents + 1, chunk):
        ids = range(first, min(documents, first + chunk - 1) + 1)
        with session_scope(url) as session:
            session.execute(insert(Link), [
                {"id": i, "country_id": 1, "city_id": i % 50 + 1, "kind": "report",
                 "label": f"report {i}", "url": f"http://127.0.0.1/{i}", "status": "alive"}
                for i in ids])  # fmt: skip
            session.execute(insert(Capture), [
                {"id": i, "record_id": f"<urn:uuid:{i}>", "link_id": i,
                 "url": f"http://127.0.0.1/{i}", "captured_at": now, "size": 1,
                 "warc_file": "x.warc.gz", "warc_offset": 0, "warc_length": 1,
                 "record_type": "response"}
                for i in ids])  # fmt: skip
            session.execute(insert(PageMetadataRow), [
                {"capture_id": i, "title": " ".join(rng.choices(vocabulary, k=8)),
                 "text": " ".join(rng.choices(vocabulary, k=300)), "language": "de",
                 "published": date(2020, 1 + i % 12, 1), "images": []}
                for i in ids])  # fmt: skip
            session.execute(
                update(Link).where(Link.id.between(ids[0], ids[-1])).values(last_capture_id=Link.id)
            )
            refresh_documents(session, ids)


@contextlib.contextmanager
def _postgres() -> Iterator[Callable[[], str]]:
    """A throwaway PostgreSQL server on loopback (``bench.postgres``, as the tests start
    one); yields a maker of empty databases' URLs."""
    from bench.postgres import PostgresServer

    with PostgresServer(prefix="bench-pg-") as server:
        made = 0

        def make() -> str:
            nonlocal made
            made += 1
            return server.createdb(f"bench{made}")

        yield make


def postgres_installed() -> bool:
    from bench.postgres import installed

    return installed()


@dataclass
class SearchBench:
    """One synthetic catalog's figures: seconds to build its rows and search documents,
    then its search index; the query set's latencies; the web app's search page's."""

    built: float
    indexed: float
    rows: list[list[str]]
    web: list[list[str]]


def bench_search(documents: int = 20_000, repeat: int = 20, url: str | None = None) -> SearchBench:
    """A synthetic catalog of ``documents`` links (at ``url``, an empty database; else a new
    SQLite file) built, indexed and searched."""
    from pipeline.catalog import session_scope
    from pipeline.catalog.db import engine_for, forget_engine
    from pipeline.catalog.fulltext import open_index

    folder = Path(tempfile.mkdtemp(prefix="bench-search-"))
    url = url or f"sqlite:///{folder / 'catalog.sqlite'}"
    try:
        started = time.perf_counter()
        synthetic_catalog(url, documents)
        built = time.perf_counter() - started
        if url.startswith("postgresql"):  # planner statistics, as autovacuum would gather
            from sqlalchemy import text

            with engine_for(url).connect() as connection:
                connection.execute(text("ANALYZE"))
                connection.commit()
        started = time.perf_counter()
        with session_scope(url) as session:
            open_index(session, anew=True)  # as `linkarchive catalog reindex`
        indexed = time.perf_counter() - started
        rows = _search_latency(url, (*SEARCHES, EXPANDED), repeat)
        rows.append(_while_indexing(url, documents, repeat))
        ranked = [q for q in (*SEARCHES, EXPANDED) if parse_ranked(q)]
        agreed = _agreement(url, tuple(ranked)) if documents <= AGREEMENT_UP_TO else {}
        for row in rows:
            row.append(agreed.get(row[0], "—"))
        web = _web_latency(folder, url, repeat)
    finally:
        forget_engine(url)
        shutil.rmtree(folder)
    return SearchBench(built, indexed, rows, web)


def _while_indexing(url: str, documents: int, repeat: int, changed: int = 50) -> list[str]:
    """p50 and p95 of "Blumen" searched each time after ``changed`` links' documents and
    statuses changed (as a crawl's indexer changes them): the index catches up first."""
    from sqlalchemy import update

    from pipeline.catalog import session_scope
    from pipeline.catalog.fulltext import SearchQuery, refresh_documents, search
    from pipeline.catalog.models import Link

    rng, times, results = random.Random(3), [], ""
    for turn in range(repeat + 1):
        ids = rng.sample(range(1, documents + 1), min(changed, documents))
        with session_scope(url) as session:
            status = ("alive", "failing")[turn % 2]
            session.execute(update(Link).where(Link.id.in_(ids)).values(status=status))
            refresh_documents(session, ids)
        with session_scope(url) as session:
            started = time.perf_counter()
            results = _results(search(session, SearchQuery(text="Blumen")))
            times.append(time.perf_counter() - started)
    return [f"Blumen, after {changed} links changed", results,
            f"{_percentile(times[1:], 0.5) * 1000:.1f}",
            f"{_percentile(times[1:], 0.95) * 1000:.1f}"]  # fmt: skip


AGREEMENT_UP_TO = 200_000  # scoring every match of a million takes minutes a query


def parse_ranked(text: str) -> bool:
    """Whether ``text`` is a query ranked by relevance (it has words to match)."""
    from pipeline.catalog.fulltext import parse_query

    return bool(parse_query(_query_text(text)).groups)


# The translations of "flowers" (`search --expand`): the widest query a researcher types.
EXPANDED = "flowers --expand"


def _query_text(text: str) -> str:
    from pipeline.catalog.translations import expand_query

    return expand_query(text.removesuffix(" --expand")) if text.endswith(" --expand") else text


def _web_latency(home: Path, url: str, repeat: int) -> list[list[str]]:
    """p50 and p95 milliseconds of the web app's search page (HTML, 50 rows, facets) for
    a researcher signed in with a token, as served in-process (no network)."""
    from fastapi.testclient import TestClient

    from pipeline.catalog import session_scope
    from pipeline.config import paths
    from pipeline.users import add_user
    from pipeline.web.app import create_app

    os.environ["LINKARCHIVE_DATABASE_URL"] = url
    try:
        with session_scope(url) as session:
            token = add_user(session, "bench", "researcher")[1]
        client = TestClient(create_app(paths(home).ensure()))
        client.headers["Authorization"] = f"Bearer {token}"
        rows = []
        for text in ("", "Blumen", "Blumen OR flowers"):
            times = []
            for _ in range(repeat + 1):
                started = time.perf_counter()
                page = client.get("/search", params={"q": text} if text else {})
                times.append(time.perf_counter() - started)
                assert page.status_code == 200, page.text[:200]
            rows.append([f"`/search?q={text}`" if text else "`/search`",
                         f"{_percentile(times[1:], 0.5) * 1000:.1f}",
                         f"{_percentile(times[1:], 0.95) * 1000:.1f}"])  # fmt: skip
        return rows
    finally:
        del os.environ["LINKARCHIVE_DATABASE_URL"]


def search_section(
    replica: str,
    sizes: tuple[int, ...],
    repeat: int = 20,
    pg_sizes: tuple[int, ...] = (),
    pg_repeat: int = 20,
) -> str:
    """The search section: ``replica`` (the table over the replica crawl's catalog, or
    NOT_RUN) and tables per synthetic catalog size, on SQLite, then on PostgreSQL
    (``pg_sizes``, ``pg_repeat`` runs), measured now."""
    parts = [
        f"""{SEARCH_HEADING}

`search()` as the web app and the CLI call it: the first 50 rows with snippets, the total
and every facet's counts (exact); milliseconds: the median (p50) and the 95th percentile
(p95) of {repeat} runs after a warm-up on SQLite, of {pg_repeat} on PostgreSQL. Matching,
counting and facets are the embedded tantivy index's (`catalog/searchindex.py`), the
page's rows and snippets the catalog's. `flowers --expand` is the query `search --expand`
makes of "flowers": its translations in ten languages, some as prefixes. "First 50 as if
all scored": at how many of the first 50 ranks the score equals that of scoring every
match as FTS5's bm25() did (the index picks the best few hundred, scored so; up to
200,000 links).

{REPLICA_INTRO}

{replica.strip()}
"""
    ]
    with contextlib.ExitStack() as stack:
        databases = stack.enter_context(_postgres()) if pg_sizes else None
        runs = [(n, None) for n in sizes] + [(n, databases) for n in pg_sizes]
        for documents, make in runs:
            print(f"search over {documents:,} links...", file=sys.stderr)
            url = make() if make else None
            found = bench_search(documents, pg_repeat if url else repeat, url)
            where = " on PostgreSQL" if url else " on SQLite"
            parts.append(f"""Over a synthetic catalog of {documents:,} links{where}, each page
300 words drawn from 2,010: its rows and search documents written in {found.built:.0f} s,
its search index built from them in {found.indexed:.0f} s (`catalog reindex`).

{table(["query", "results", "p50 ms", "p95 ms", "first 50 as if all scored"], found.rows)}

The web app's search page over it (HTML, 50 rows, facets):

{table(["page", "p50 ms", "p95 ms"], found.web)}
""")
    return "\n".join(parts)


NOT_RUN = "_Not run in this invocation (see `--only`); run `make bench` for figures._"

# Profiled by hand (py-spy) while rebuilding the engine: where a crawl's CPU goes.
PROFILE = (Path(__file__).resolve().parent / "profile.md").read_text(encoding="utf-8")


def splice(document: str, section: str) -> str:
    """``document`` with its ``## `` section of ``section``'s heading replaced (appended
    if it has none)."""
    heading = section.split("\n", 1)[0]
    start = document.find(heading + "\n")
    if start < 0:
        return document.rstrip("\n") + "\n\n" + section
    end = document.find("\n## ", start + len(heading))
    return document[:start] + section.rstrip("\n") + "\n" + (document[end:] if end >= 0 else "")


def table(header: list[str], rows: list[list[str]] | None) -> str:
    if rows is None:
        return NOT_RUN
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        choices=["crawl", "workers", "accuracy", "search", "get", "others"],
        help="crawl, workers, accuracy, search, get: only that section (get writes 5 GB of "
        "WARC files), the rest of docs/PERFORMANCE.md kept; others: all but crawl",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="crawl section: 300/30/20x5 pages, 1 run, RSS at 500 and 2,000",
    )
    parser.add_argument("--runs", type=int, help="crawl section: runs per contender and shape")
    parser.add_argument("--rss-sizes", help="crawl section: comma-separated page counts")
    parser.add_argument(
        "--search-sizes",
        help="search section: comma-separated synthetic catalog sizes in links (default "
        "20000,200000; 1000000 takes about 15 minutes to build)",
    )
    parser.add_argument(
        "--search-repeat", type=int, default=20, help="search section: runs per query"
    )
    parser.add_argument(
        "--search-postgres-sizes",
        help="search section: catalog sizes on PostgreSQL, started as the tests start it "
        "(default 20000 when it is installed; empty: none)",
    )
    parser.add_argument(
        "--search-postgres-repeat", type=int, default=20, help="search section: runs per query"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so servers and crawls started below are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    crawl_env = dict(os.environ)  # before the replica section changes os.environ
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from pipeline.replica import ReplicaWorld

    if args.only == "accuracy":
        from bench.accuracy import accuracy_section

        print("metadata accuracy...", file=sys.stderr)
        OUT.write_text(splice(OUT.read_text(encoding="utf-8"), accuracy_section()))
        print(f"wrote {OUT}", file=sys.stderr)
        return 0
    if args.only == "get":
        from bench.getbench import get_section

        print("get from a 5 GB archive...", file=sys.stderr)
        section = get_section(progress=lambda step: print(step, file=sys.stderr))
        OUT.write_text(splice(OUT.read_text(encoding="utf-8"), section))
        print(f"wrote {OUT}", file=sys.stderr)
        return 0
    sizes = SEARCH_SIZES
    if args.search_sizes:
        sizes = tuple(int(n.replace("_", "")) for n in args.search_sizes.split(","))
    pg_sizes: tuple[int, ...] = (20_000,) if postgres_installed() else ()
    if args.search_postgres_sizes is not None:
        pg_sizes = tuple(
            int(n.replace("_", "")) for n in args.search_postgres_sizes.split(",") if n
        )
    pg = (pg_sizes, args.search_postgres_repeat)
    if args.only == "search":
        print("search over the replica world's catalog...", file=sys.stderr)
        section = search_section(replica_search(), sizes, args.search_repeat, *pg)
        OUT.write_text(splice(OUT.read_text(encoding="utf-8"), section))  # as it is now
        print(f"wrote {OUT}", file=sys.stderr)
        return 0
    if args.only == "workers":
        from bench.workersbench import workers_section

        print("workers...", file=sys.stderr)
        OUT.write_text(splice(OUT.read_text(encoding="utf-8"), workers_section(args.quick)))
        print(f"wrote {OUT}", file=sys.stderr)
        return 0
    warc = extract = crawl = browser = None
    search = SEARCH_HEADING + "\n\n" + NOT_RUN + "\n"
    from bench.accuracy import HEADING, accuracy_section

    accuracy = HEADING + "\n\n" + NOT_RUN + "\n"
    if args.only != "crawl":
        print("metadata accuracy...", file=sys.stderr)
        accuracy = accuracy_section()
        print("WARC writer/reader...", file=sys.stderr)
        warc = bench_warc()
        with ReplicaWorld() as world:
            print("extraction...", file=sys.stderr)
            extract = bench_extract(world)
            print("crawl...", file=sys.stderr)
            crawl = bench_crawl(world)
            print("browser capture...", file=sys.stderr)
            browser = bench_browser(world)
        replica = table(["query", "results", "p50 ms", "p95 ms"], SEARCH_REPLICA or None)
        search = search_section(replica, sizes, args.search_repeat, *pg)
    workers = "## Workers\n\n" + NOT_RUN + "\n"
    if args.only != "crawl":
        from bench.workersbench import workers_section

        print("workers...", file=sys.stderr)
        workers = workers_section(args.quick)
    engine = "## Crawl engine: `linkarchive crawl` beside wget and bare Scrapy\n\n" + NOT_RUN + "\n"
    if args.only != "others":
        from bench.crawlbench import config, crawl_section

        sizes = tuple(int(n) for n in args.rss_sizes.split(",")) if args.rss_sizes else None
        print("crawl engine...", file=sys.stderr)
        engine = crawl_section(config(args.quick, args.runs, sizes), crawl_env)
        if args.only == "crawl":  # the other sections as they are
            OUT.write_text(splice(OUT.read_text(encoding="utf-8"), engine), encoding="utf-8")
            print(f"wrote {OUT}", file=sys.stderr)
            return 0
    cpu = platform.processor() or platform.machine()
    text = f"""# Performance

Measured by `make bench` (`bench/run.py`), which rewrites this file. Wall-clock figures
on {os.cpu_count()} cores ({cpu}), Python {platform.python_version()},
{datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}. Only loopback addresses are involved.
Figures vary by ±30% between runs on a shared machine; compare runs on one machine.

## WARC writing and reading (`archive/`)

2,000 request+response pairs, 50 KB HTML-like bodies, one gzip member per record
(level 6), SHA-256 block and payload digests, `write_many` per exchange.

{table(["operation", "", "MB/s of bodies", "exchanges/s"], warc)}

## Metadata extraction (`pipeline/extract.py`)

Every replica page that answers 200, the median of five runs each.

{table(["", ""], extract)}

{accuracy}
## Whole crawl over the replica world

The crawl flow (seed import, crawl units of whole hosts, one Scrapy process per core,
WARC writing, indexing into SQLite while the units run) against wget over the same link
list. wget fetches page requisites only: it neither follows gallery
pagination nor fetches full-size images, video files or extracts metadata, so it does
less work; the comparison shows what the extra completeness costs.

{table(["tool", "links", "responses archived", "seconds", "WARC KB"], crawl)}

Where the crawl flow's time goes (seconds):

{table(["part", "seconds"], BREAKDOWN if crawl else None)}

Each host's links stay in one crawl process (per-host politeness holds across the
processes running at once), so the unit holding the largest host bounds the crawl; the
replica's news site holds 16 of the 25 links.

## Browser capture (`spiders/browser/`)

The crawl flow with pages rendered in Chromium through the recording proxy: every
exchange recorded, behaviours (network quiet, scroll, "see more", media), a full-page
screenshot, the DOM and its text per page, at most two pages at once per crawl process.
"pages/s" counts rendered pages (screenshots) over the whole run's wall time, Prefect and
seed import included; "Chromium MB" is the peak of the proportional set size (PSS: shared
pages divided among the processes sharing them) summed over all Chromium processes. One
page per host renders at a time by default (`LINKARCHIVE_BROWSER_PAGES_PER_HOST`): the
replica's news site holds 16 of the 25 links, the social platform all four, so those
pages render one after another; each page waits for the network to go quiet and scrolls
until its height is unchanged twice (about 1 s for a short static page).

{table(["crawl", "links", "pages rendered", "seconds", "pages/s", "Chromium MB"], browser)}

{search}
{engine}

{workers}

{PROFILE}"""
    from bench.getbench import kept_section  # 5 GB to write: only `--only get` remeasures it

    text = splice(text, kept_section(OUT.read_text(encoding="utf-8") if OUT.exists() else ""))
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
