"""``linkarchive get`` of one capture from an archive of at least 5 GB of WARC files (issue 16).

``python -m bench.getbench [--gb 5]`` prints the section; ``make bench-get`` (``python -m
bench.run --only get``) writes it into docs/PERFORMANCE.md.

The archive is real: a data home in a temporary folder (``$LINKARCHIVE_BENCH_TMP``, else
the system's), WARC files written by the project's own writer (``RotatingWarcWriter``,
request and response records built by ``RecordFactory``, one gzip member per record,
rotated at 2,000 records as a crawl rotates them), then indexed into the SQLite catalog by
the project's indexer as ``warc recover`` and the crawl flow do (``index_files`` with the
custody ledger kept: capture rows with file, offset and length, CDXJ, ledger lines).
Payloads are what a crawl of news pages and photo galleries stores: JPEG-like bodies of
50-500 KB (random bytes: incompressible, as photos are), HTML pages of 40-200 KB, half of
them gzip-encoded by the server (stored as received). The WARC files are compressed at
level 1, the cheapest real compression (random bytes are stored blocks at any level, so
reading costs what it would at level 6); writing them is not fsynced until the end.

``get`` is then timed as the command runs it (``pipeline/cli/research.py``): resolve the
capture (``resolve_capture``), then ``retrieve_payload`` (read the record by offset,
decode, write the output file, append the ``retrieved`` line to the capture's custody
ledger), in this process after a first ``get`` has opened the catalog; and as the command
itself, ``linkarchive get --capture ID -o FILE``, a new process each time. Captures are
drawn at random from every file. "Warm": the records were read once before (in the page
cache). "Cold": the WARC files, the catalog and the ledger file are dropped from the page
cache before each ``get`` (``posix_fadvise(DONTNEED)`` on those files only, so the rest
of the machine keeps its cache; ``/proc/sys/vm/drop_caches`` would empty everyone's).
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

HEADING = "## `get` from a large archive"
TARGET_MS = 50
ROTATE_RECORDS = 2_000  # a crawl closes its WARC file at 2,000 records (WarcRotation)
BIN = Path(sys.executable).parent


@dataclass
class Archive:
    """A built data home and what it holds."""

    home: Path
    files: int = 0
    warc_bytes: int = 0
    captures: int = 0
    payload_bytes: int = 0
    write_seconds: float = 0.0
    index_seconds: float = 0.0
    capture_ids: list[int] = field(default_factory=list)
    capture_files: dict[int, str] = field(default_factory=dict)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)  # os.getloadavg() when timing began


# ----------------------------------------------------------------------------- the archive


def _payloads(rng: random.Random) -> Iterator[tuple[str, list[tuple[str, str]], bytes]]:
    """(URL, response headers, body as sent) of an endless crawl of news pages and photos."""
    noise = os.urandom(64 << 20)  # photos: slices of random bytes, incompressible
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyzäöüßабвгдежзиклмнопрст") for _ in range(n))
        for n in (rng.randint(2, 11) for _ in range(4000))
    ]
    text = " ".join(rng.choices(words, k=900_000)).encode()  # about 6 MB of prose
    serial = 0
    while True:
        serial += 1
        host = rng.randrange(200)
        if rng.random() < 0.6:  # a photo: most responses, and most bytes, of a gallery crawl
            size = int(math.exp(rng.uniform(math.log(50_000), math.log(500_000))))
            start = rng.randrange(len(noise) - size)
            body = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + serial.to_bytes(8, "big")
            body += noise[start : start + size - len(body)]
            url = f"https://photos{host}.example.net/gallery/{serial}/full.jpg"
            headers = [("Content-Type", "image/jpeg")]
        else:
            size = rng.randint(40_000, 200_000)
            start = rng.randrange(len(text) - size)
            body = (
                (
                    f"<!doctype html><html><head><meta charset='utf-8'><title>Report {serial}"
                    "</title></head><body><article><p>"
                ).encode()
                + text[start : start + size]
                + b"</p></article></body></html>"
            )
            url = f"https://news{host}.example.org/2020/10/{serial}/report.html"
            headers = [("Content-Type", "text/html; charset=utf-8")]
            if rng.random() < 0.5:  # gzip-encoded by the server, stored as received
                body = gzip.compress(body, compresslevel=6, mtime=0)
                headers.append(("Content-Encoding", "gzip"))
        headers += [
            ("Content-Length", str(len(body))),
            ("Server", "nginx"),
            ("Cache-Control", "max-age=600"),
        ]
        yield url, headers, body


def build_archive(home: Path, gigabytes: float, seed: int = 16) -> Archive:
    """Write at least ``gigabytes`` (10**9 bytes) of WARC files into ``home`` and index them."""
    from sqlalchemy import select

    from archive import RecordFactory, RotatingWarcWriter
    from pipeline.catalog import session_scope
    from pipeline.catalog.models import Capture
    from pipeline.config import paths
    from pipeline.evidence.ledgerfile import keep_ledger
    from pipeline.indexer import index_files

    where = paths(home).ensure()
    built = Archive(home=home)
    rng = random.Random(seed)
    first = datetime(2020, 8, 9, tzinfo=UTC)
    when = iter(first + timedelta(seconds=15 * i) for i in range(10**9))
    factory = RecordFactory(clock=lambda: next(when))
    target = int(gigabytes * 10**9)
    started = time.perf_counter()
    closed = 0
    writer = RotatingWarcWriter(
        where.warcs, fsync=False, compresslevel=1, factory=factory,
        warcinfo_fields={"operator": "bench/getbench.py"},
    )  # fmt: skip
    with writer:
        for url, headers, body in _payloads(rng):
            date = factory.now()
            response = factory.response(url, 200, "OK", "HTTP/1.1", headers, body,
                                        ip="203.0.113.7", date=date)  # fmt: skip
            path = "/" + url.split("/", 3)[3]
            request = factory.request(
                url, "GET", path, "HTTP/1.1",
                [("Host", url.split("/")[2]), ("User-Agent", "linkarchive"),
                 ("Accept-Encoding", "gzip")],
                concurrent_to=response.rec_headers.get_header("WARC-Record-ID"), date=date,
            )  # fmt: skip
            writer.write_many([request, response])
            built.payload_bytes += len(body)
            if writer.close_if_older(10**9, records=ROTATE_RECORDS) is not None:
                closed = sum(p.stat().st_size for p in writer.closed_files)
            if closed + writer.current_size >= target:
                break
    os.sync()  # the writer did not fsync: everything on disk before anything is timed
    built.write_seconds = time.perf_counter() - started
    files = sorted(where.warcs.glob("*.warc.gz"))
    built.files = len(files)
    built.warc_bytes = sum(p.stat().st_size for p in files)
    started = time.perf_counter()
    for path in files:  # one indexing pass per closed file, as a crawl's indexer sees them
        with session_scope(where.database_url) as session:
            keep_ledger(session, where)
            index_files(session, [path], where.indexes)
    built.index_seconds = time.perf_counter() - started
    with session_scope(where.database_url) as session:
        rows = session.execute(
            select(Capture.id, Capture.warc_file).where(Capture.record_type == "response")
        ).all()
    built.captures = len(rows)
    built.capture_ids = [row.id for row in rows]
    built.capture_files = {row.id: row.warc_file for row in rows}
    return built


# ----------------------------------------------------------------------------- timing


def _evict(paths: list[Path]) -> None:
    """Drop these files' pages from the page cache (dirty ones are written first)."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fdatasync(fd)  # the catalog's and ledger's pages a get just wrote
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _cached_files(home: Path) -> list[Path]:
    return [
        *sorted((home / "warcs").glob("*.warc.gz")),
        *sorted(home.glob("catalog.sqlite*")),
        *sorted((home / "custody").glob("*.jsonl")),
    ]


def get_in_process(home: Path, capture_id: int, output: Path) -> dict[str, float]:
    """``linkarchive get --capture ID -o OUTPUT``'s work, in this process, timed by part
    (seconds): what ``pipeline/cli/research.py``'s ``get`` calls, in its order."""
    from pipeline.catalog import session_scope
    from pipeline.catalog.queries import resolve_capture
    from pipeline.config import paths
    from pipeline.evidence.custody import current_actor
    from pipeline.retrieval import read_payload, record_retrieval

    t0 = time.perf_counter()
    where = paths(home).ensure()
    with session_scope(where.database_url) as session:
        chosen = resolve_capture(session, None, capture_id, None).id
    t1 = time.perf_counter()
    # retrieve_payload(where, chosen, actor=..., reason=None, output=output), in its parts
    got = read_payload(where, chosen)
    t2 = time.perf_counter()
    output.write_bytes(got.body)
    recorded = str(output.resolve())
    t3 = time.perf_counter()
    record_retrieval(where, got, actor=current_actor(), reason=None, output=recorded)
    t4 = time.perf_counter()
    return {"resolve": t1 - t0, "read": t2 - t1, "write": t3 - t2, "custody": t4 - t3,
            "total": t4 - t0, "bytes": float(len(got.body))}  # fmt: skip


def get_cli(home: Path, capture_id: int, output: Path) -> float:
    """Seconds of ``linkarchive --home HOME get --capture ID -o OUTPUT``, a new process."""
    env = {**os.environ, "LINKARCHIVE_HOME": str(home)}
    env.pop("LINKARCHIVE_DATABASE_URL", None)
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "linkarchive"), "--home", str(home), "get", "--capture", str(capture_id),
         "-o", str(output)],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    return time.perf_counter() - started


def _percentile(values: list[float], share: float) -> float:
    """Nearest rank: the smallest value with ``share`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


@dataclass
class Timings:
    name: str
    runs: list[dict[str, float]] = field(default_factory=list)

    def values(self, part: str = "total") -> list[float]:
        return [run[part] for run in self.runs]


def measure(
    built: Archive,
    samples: int = 200,
    cold_samples: int = 50,
    cli_samples: int = 12,
    seed: int = 61,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Timings]:
    """Timings of ``get`` in this process (warm, cold) and as a command (warm, cold)."""
    rng = random.Random(seed)
    out = Path(tempfile.mkdtemp(prefix="bench-get-out-")) / "payload"
    home = built.home
    try:
        chosen = rng.sample(built.capture_ids, min(samples, len(built.capture_ids)))
        get_in_process(home, chosen[0], out)  # opens the catalog (migrations checked) once
        for capture_id in chosen:  # every chosen record read once: in the page cache
            get_in_process(home, capture_id, out)
        progress("in process, warm")
        warm = Timings("in process, warm")
        warm.runs = [get_in_process(home, capture_id, out) for capture_id in chosen]
        progress("in process, cold")
        cold = Timings("in process, cold (files dropped from the page cache)")
        files = _cached_files(home)
        for capture_id in rng.sample(built.capture_ids, min(cold_samples, len(chosen))):
            _evict(files)
            cold.runs.append(get_in_process(home, capture_id, out))
        progress("command, warm")
        cli_warm = Timings("`linkarchive get`, a new process, warm")
        for capture_id in chosen[:cli_samples]:
            cli_warm.runs.append({"total": get_cli(home, capture_id, out)})
        cli_cold = Timings("`linkarchive get`, a new process, cold")
        for capture_id in rng.sample(built.capture_ids, min(cli_samples, len(chosen))):
            _evict(files)
            cli_cold.runs.append({"total": get_cli(home, capture_id, out)})
        return [warm, cold, cli_warm, cli_cold]
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def get_section(
    gigabytes: float = 5.0,
    samples: int = 200,
    cold_samples: int = 50,
    cli_samples: int = 12,
    progress: Callable[[str], None] = lambda _: None,
) -> str:
    """The markdown section: build a ``gigabytes`` archive, time ``get`` over it, clean up."""
    base = os.environ.get("LINKARCHIVE_BENCH_TMP") or None
    home = Path(tempfile.mkdtemp(prefix="bench-get-", dir=base))
    try:
        progress(f"writing {gigabytes:g} GB of WARC files into {home}")
        built = build_archive(home / "data", gigabytes)
        built.load = os.getloadavg()
        progress(f"{built.files} files, {built.captures} captures; timing get")
        timings = measure(built, samples, cold_samples, cli_samples, progress=progress)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    warm, cold, cli_warm, cli_cold = timings

    def cells(warm: Timings, cold: Timings, part: str = "total") -> list[str]:
        return [_ms(_percentile(t.values(part), q)) for t in (warm, cold) for q in (0.5, 0.95)]

    rows = [["in process", *cells(warm, cold)]]
    rows += [
        [f"… {name}", *cells(warm, cold, part)]
        for part, name in (("resolve", "resolve the capture (catalog)"),
                           ("read", "read the record by offset, decode the payload"),
                           ("write", "write the output file"),
                           ("custody", "append the `retrieved` custody line"))
    ]  # fmt: skip
    rows.append(
        ["`linkarchive get --capture ID -o FILE`, a new process", *cells(cli_warm, cli_cold)]
    )
    sizes = warm.values("bytes")
    start_cost = statistics.median(cli_warm.values()) - statistics.median(warm.values())
    worst = max(_percentile(warm.values(), 0.95), _percentile(cold.values(), 0.95))
    verdict = (
        f"In process, `get` meets the {TARGET_MS} ms target, warm and cold"
        if worst < TARGET_MS / 1000
        else f"In process, `get`'s p95 is over the {TARGET_MS} ms target ({_ms(worst)} ms)"
    )
    load = ", ".join(f"{value:.1f}" for value in built.load)
    return f"""{HEADING}

`make bench-get` (`bench/getbench.py`): {built.warc_bytes / 1e9:.2f} GB of WARC files
({built.files} files, rotated at {ROTATE_RECORDS:,} records as a crawl rotates them, gzip
level 1) written by the project's writer, {built.captures:,} response records
({built.payload_bytes / 1e9:.2f} GB of payloads: photos of 50-500 KB of incompressible
bytes, HTML pages of 40-200 KB, half gzip-encoded), indexed into a SQLite catalog by the
project's indexer with custody ledgers (writing took {built.write_seconds:.0f} s, indexing
{built.index_seconds:.0f} s). Each `get` names a capture drawn at random from every file
(`--capture ID`, output to a file; payloads of {min(sizes) / 1e3:.0f} to
{max(sizes) / 1e3:.0f} KB, median {statistics.median(sizes) / 1e3:.0f} KB): {len(warm.runs)}
warm and {len(cold.runs)} cold in process, {len(cli_warm.runs)} of each as a command
(load average {load} when timing started). Milliseconds:

{_table(["`get` of one capture", "warm p50", "warm p95", "cold p50", "cold p95"], rows)}

{verdict}. "Warm" reads records already in the page cache; "cold" first drops the WARC
files, the catalog and the ledger file from it (`posix_fadvise`, those files only; the
virtual disk's host may still cache them), so each `get` reads its record from the disk:
one seek, then one gzip member, the record alone, however big its file. The rows marked …
split `get` in its parts: the custody line is its one write (a SQLite commit and an
fsynced append to `custody/ledger.jsonl`), so every `get` waits for a disk flush, and
that is its largest part. As a command, a new process adds about
{start_cost * 1000:,.0f} ms before any of this: Python starting and importing the CLI,
SQLAlchemy, Alembic, warcio, and checking the catalog's migrations when it is first
opened; a long-lived process (the web app, the API) pays that once.
"""


def kept_section(document: str) -> str:
    """``document``'s section of this bench (a full ``make bench`` keeps it as it is),
    else the heading and a line saying how to measure it."""
    start = document.find(HEADING + "\n")
    if start < 0:
        return f"{HEADING}\n\n_Not run yet: `make bench-get` writes this section._\n"
    end = document.find("\n## ", start + len(HEADING))
    return document[start : end if end >= 0 else None].rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.getbench", description=__doc__)
    parser.add_argument("--gb", type=float, default=5.0, help="WARC gigabytes (default 5)")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--cold-samples", type=int, default=50)
    parser.add_argument("--cli-samples", type=int, default=12)
    args = parser.parse_args(argv)
    section = get_section(args.gb, args.samples, args.cold_samples, args.cli_samples,
                          progress=lambda s: print(s, file=sys.stderr))  # fmt: skip
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
