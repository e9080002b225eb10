"""RotatingWarcWriter: naming, determinism, rotation, durability, crash (kill -9) recovery."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archive import (
    RecordFactory,
    RotatingWarcWriter,
    TruncatedWarcError,
    iter_records,
    read_record,
    record_id,
    verify_record,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: str(uuid.UUID(int=next(counter)))


def factory() -> RecordFactory:
    return RecordFactory(clock=lambda: T0, new_id=ids())


def noise(n: int, seed: int) -> bytes:
    """Incompressible bytes, so gzip member sizes are predictable."""
    return random.Random(seed).randbytes(n)


def warcio_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", "-v", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def exchange(f: RecordFactory, i: int, size: int = 100) -> list:
    url = f"http://127.0.0.1:8000/page/{i}"
    resp = f.response(url, 200, "OK", "HTTP/1.1", [("Content-Type", "text/html")], noise(size, i))
    host = [("Host", "127.0.0.1:8000")]
    req = f.request(url, "GET", f"/page/{i}", "HTTP/1.1", host, concurrent_to=record_id(resp))
    return [resp, req]


# ----------------------------------------------------------------------------- naming


def test_open_name_while_writing_and_rename_on_close(tmp_path: Path) -> None:
    closed: list[Path] = []
    f = factory()
    w = RotatingWarcWriter(
        tmp_path / "warcs", factory=f, hostname="crawler 1/b", on_close=closed.append
    )
    assert w.current_path is None and list((tmp_path / "warcs").iterdir()) == []  # lazy
    loc = w.write(f.resource("urn:x:1", b"one", "text/plain"))

    name = f"linkarchive-20240501120000123-00000-{os.getpid()}~crawler_1_b.warc.gz"
    assert loc.filename == name == w.current_filename
    assert w.current_path == tmp_path / "warcs" / (name + ".open")
    assert sorted(p.name for p in (tmp_path / "warcs").iterdir()) == [name + ".open"]
    assert closed == []
    # readable while open, through its final name
    assert read_record(tmp_path / "warcs" / name, loc.offset).block == b"one"
    assert [r.rec_type for _, r in iter_records(w.current_path)] == ["warcinfo", "resource"]

    assert w.close() == [tmp_path / "warcs" / name]
    assert sorted(p.name for p in (tmp_path / "warcs").iterdir()) == [name]
    assert closed == [tmp_path / "warcs" / name]
    assert w.current_path is None and w.closed_files == closed
    assert w.close() == closed  # idempotent, no second callback
    assert closed == [tmp_path / "warcs" / name]

    # writing again starts the next serial
    loc2 = w.write(f.resource("urn:x:2", b"two", "text/plain"))
    assert loc2.filename == name.replace("-00000-", "-00001-")
    assert len(w.close()) == 2 and len(closed) == 2


def test_file_name_pattern_with_real_clock(tmp_path: Path) -> None:
    with RotatingWarcWriter(tmp_path, prefix="job7", hostname="h.example.org") as w:
        loc = w.write(RecordFactory().resource("urn:x", b"", "text/plain"))
    pattern = rf"job7-\d{{17}}-00000-{os.getpid()}~h\.example\.org\.warc\.gz"
    assert re.fullmatch(pattern, loc.filename)
    stamp = datetime.strptime(loc.filename.split("-")[1][:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_fixed_clock_and_ids_give_byte_identical_files(tmp_path: Path) -> None:
    def run(directory: Path) -> tuple[list[str], list[bytes]]:
        f = factory()
        info = {"crawl-run-id": "r1"}
        w = RotatingWarcWriter(
            directory, factory=f, hostname="host1", max_size=3000, warcinfo_fields=info, fsync=False
        )
        for i in range(6):
            w.write_many(exchange(f, i, size=700))
        w.write(f.metadata("http://127.0.0.1:8000/", {"pages": 6}))
        files = w.close()
        return [p.name for p in files], [p.read_bytes() for p in files]

    names_a, data_a = run(tmp_path / "a")
    names_b, data_b = run(tmp_path / "b")
    assert len(names_a) > 1
    assert names_a == names_b
    assert data_a == data_b
    first = gzip.decompress(data_a[0])
    assert first.startswith(b"WARC/1.1\r\nWARC-Type: warcinfo\r\n")
    assert b"WARC-Date: 2024-05-01T12:00:00.123456Z\r\n" in first


# ----------------------------------------------------------------------------- rotation


def test_rotation_every_file_has_warcinfo_and_passes_warcio_check(tmp_path: Path) -> None:
    closed: list[Path] = []
    f = factory()
    max_size = 4000
    w = RotatingWarcWriter(
        tmp_path, factory=f, hostname="h", max_size=max_size, on_close=closed.append, fsync=False
    )
    written = []
    for i in range(12):
        written += w.write_many(exchange(f, i, size=600))
    files = w.close()

    assert len(files) >= 4
    assert files == closed == w.closed_files
    assert [p.name.split("-")[2] for p in files] == [f"{n:05d}" for n in range(len(files))]
    assert not list(tmp_path.glob("*.open"))

    seen = []
    for path in files:
        records = list(iter_records(path))
        (info_loc, info), rest = records[0], records[1:]
        assert info.rec_type == "warcinfo" and info_loc.offset == 0
        assert info.get("WARC-Filename") == path.name
        assert rest, "no file holds only a warcinfo"
        for loc, rec in rest:
            assert rec.get("WARC-Warcinfo-ID") == info.record_id
            assert loc.filename == path.name
            assert verify_record(rec) == []
            seen.append(loc)
        # only a file holding a single exchange may exceed max_size
        assert path.stat().st_size <= max_size or len(rest) == 2
        # request and response of one exchange stay together
        assert len(rest) % 2 == 0
        for (_, resp), (_, req) in zip(rest[::2], rest[1::2], strict=True):
            assert req.get("WARC-Concurrent-To") == resp.record_id

    assert seen == written  # every record exactly once, where write_many said
    result = warcio_check(*files)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("digest pass") == len(written) + len(files)


def test_group_straddling_the_limit_moves_whole_to_next_file(tmp_path: Path) -> None:
    f = factory()
    w = RotatingWarcWriter(tmp_path, factory=f, max_size=2500, fsync=False)
    first = w.write(f.resource("urn:x:1", noise(1000, 1), "application/octet-stream"))
    group = w.write_many(
        [f.resource(f"urn:x:{i}", noise(600, i), "application/octet-stream") for i in (2, 3)]
    )
    assert group[0].filename == group[1].filename != first.filename
    assert group[1].offset == group[0].offset + group[0].length
    w.close()


def test_oversized_record_gets_a_file_of_its_own(tmp_path: Path) -> None:
    f = factory()
    w = RotatingWarcWriter(tmp_path, factory=f, max_size=1000, fsync=False)
    big = w.write(f.resource("urn:x:big", noise(5000, 1), "application/octet-stream"))
    small = w.write(f.resource("urn:x:small", b"s", "text/plain"))
    files = w.close()
    assert [p.name for p in files] == [big.filename, small.filename]
    assert [len(list(iter_records(p))) for p in files] == [2, 2]


# ----------------------------------------------------------------------------- durability


def test_each_write_is_fsynced_once_and_files_are_renamed_durably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    f = factory()
    w = RotatingWarcWriter(tmp_path, factory=f)
    w.write_many(exchange(f, 0))
    after_open_and_first = len(calls)  # warcinfo file + directory, then the group
    assert after_open_and_first == 3
    w.write_many(exchange(f, 1))
    assert len(calls) == after_open_and_first + 1  # one fsync for the whole group
    w.close()
    assert len(calls) == after_open_and_first + 3  # file, then directory after rename

    calls.clear()
    w2 = RotatingWarcWriter(tmp_path / "nofsync", factory=factory(), fsync=False)
    w2.write_many(exchange(f, 2))
    w2.close()
    assert calls == []


def test_failed_serialisation_leaves_file_untouched(tmp_path: Path) -> None:
    f = factory()
    w = RotatingWarcWriter(tmp_path, factory=f, fsync=False)
    ok = w.write(f.resource("urn:x:1", b"fine", "text/plain"))
    size = w.current_size
    broken = f.resource("urn:x:2", b"0123456789", "text/plain")
    broken.raw_stream.truncate(5)  # the stream now lies about its length
    with pytest.raises(ValueError, match="expected 10"):
        w.write_many([f.resource("urn:x:3", b"x", "text/plain"), broken])
    assert w.current_size == size == w.current_path.stat().st_size
    after = w.write(f.resource("urn:x:4", b"after", "text/plain"))
    assert after.offset == ok.offset + ok.length
    (path,) = w.close()
    assert [r.block for _, r in iter_records(path)][1:] == [b"fine", b"after"]


def test_record_can_be_written_twice_and_is_not_mutated(tmp_path: Path) -> None:
    f = factory()
    rec = f.response("https://example.org/", 200, "OK", "HTTP/1.1", [("A", "b")], b"body")
    before = list(rec.rec_headers.headers)
    locs = []
    for sub in ("one", "two"):
        with RotatingWarcWriter(tmp_path / sub, factory=factory(), hostname="h", fsync=False) as w:
            locs.append(w.write(rec))
    assert rec.rec_headers.headers == before
    a = read_record(tmp_path / "one" / locs[0].filename, locs[0].offset)
    b = read_record(tmp_path / "two" / locs[1].filename, locs[1].offset)
    assert a.block == b.block == b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody"
    assert a.headers == b.headers


def test_concurrent_writers_threads(tmp_path: Path) -> None:
    f = RecordFactory()  # real uuid4 ids: thread-safe
    w = RotatingWarcWriter(tmp_path, factory=f, max_size=60_000, fsync=False)
    results: dict[int, list] = {}

    def worker(n: int) -> None:
        results[n] = [w.write_many(exchange(f, n * 100 + i, size=500)) for i in range(40)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = w.close()
    assert len(files) > 1
    stored = {(loc.filename, loc.offset): (loc, rec) for p in files for loc, rec in iter_records(p)}
    assert len(stored) == 4 * 40 * 2 + len(files)
    for groups in results.values():
        for resp_loc, req_loc in groups:
            assert resp_loc.filename == req_loc.filename
            assert req_loc.offset == resp_loc.offset + resp_loc.length
            loc, req = stored[(req_loc.filename, req_loc.offset)]
            assert loc == req_loc
            assert req.get("WARC-Concurrent-To") == resp_loc.record_id
    assert warcio_check(*files).returncode == 0


# ----------------------------------------------------------------------------- crash


CRASH_SCRIPT = r"""
import json, os, signal, sys
from archive import RecordFactory, RotatingWarcWriter, record_id
f = RecordFactory()
w = RotatingWarcWriter(sys.argv[1], hostname="crashy", fsync=True, factory=f)
for i in range(5):
    url = f"http://127.0.0.1:8000/{i}"
    resp = f.response(url, 200, "OK", "HTTP/1.1", [("Content-Type", "text/plain")],
                      os.urandom(3000 + 1000 * i))
    req = f.request(url, "GET", f"/{i}", "HTTP/1.1", [], concurrent_to=record_id(resp))
    for loc in w.write_many([resp, req]):
        print(json.dumps(loc.__dict__), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_9_leaves_complete_records_readable_up_to_torn_tail(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    handed_out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(handed_out) == 10

    (open_file,) = tmp_path.iterdir()
    assert open_file.name.endswith(".warc.gz.open")  # never renamed: crashed
    assert handed_out[0]["filename"] == open_file.name.removesuffix(".open")

    # every location handed out is on disk and readable as is
    intact = list(iter_records(open_file))
    assert [(loc.offset, loc.length, loc.record_id) for loc, _ in intact[1:]] == [
        (h["offset"], h["length"], h["record_id"]) for h in handed_out
    ]
    assert all(verify_record(rec) == [] for _, rec in intact)
    assert warcio_check(open_file).returncode == 0

    # now tear the last record (the request of exchange 4) at several points
    data = open_file.read_bytes()
    last = handed_out[-1]
    assert last["offset"] + last["length"] == len(data)
    cuts = [1, 9, 10, last["length"] // 2, last["length"] - 9, last["length"] - 1]
    for cut in cuts:
        open_file.write_bytes(data[: last["offset"] + cut])
        complete = list(iter_records(open_file, strict=False))
        assert [loc.record_id for loc, _ in complete[1:]] == [
            h["record_id"] for h in handed_out[:-1]
        ]
        with pytest.raises(TruncatedWarcError) as info:
            for _ in iter_records(open_file):
                pass
        assert info.value.offset == last["offset"]  # where the torn tail starts
        with pytest.raises(TruncatedWarcError):
            read_record(open_file, last["offset"])
        # records before the tail are still served by offset, through the final name
        prev = handed_out[-2]
        rec = read_record(tmp_path / prev["filename"], prev["offset"])
        assert rec.http_status == 200 and verify_record(rec) == []

    # a tear inside a big response (many 16 KiB reads) behaves the same
    resp4 = handed_out[-2]
    open_file.write_bytes(data[: resp4["offset"] + resp4["length"] // 2])
    assert len(list(iter_records(open_file, strict=False))) == 1 + 8
    with pytest.raises(TruncatedWarcError) as info:
        list(iter_records(open_file))
    assert info.value.offset == resp4["offset"]

    # garbage appended after complete records is reported too
    open_file.write_bytes(data + b"\x1f\x8b\x08")
    with pytest.raises(TruncatedWarcError) as info:
        list(iter_records(open_file))
    assert info.value.offset == len(data)


def test_close_if_older_closes_a_file_with_records_once_it_is_old_enough(tmp_path: Path) -> None:
    f = factory()
    w = RotatingWarcWriter(tmp_path, factory=f, fsync=False)
    assert w.close_if_older(0) is None  # nothing open
    w.write_many(exchange(f, 0))
    assert w.close_if_older(3600) is None  # too young: still open
    assert list(tmp_path.glob("*.open"))
    closed = w.close_if_older(0)
    assert closed is not None and closed.exists() and not list(tmp_path.glob("*.open"))
    w.write_many(exchange(f, 1))  # the next write opens a new file
    assert w.close_if_older(0) not in (None, closed)
    assert warcio_check(*w.close()).returncode == 0
    assert len(w.closed_files) == 2


def test_group_commit_fsyncs_at_most_once_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    f = factory()
    with RotatingWarcWriter(tmp_path, factory=f, fsync=True, fsync_interval=3600) as w:
        w.write_many(exchange(f, 0))  # the warcinfo's append fsynced; these wait
        before = len(synced)
        for i in range(1, 20):
            w.write_many(exchange(f, i))
        assert len(synced) == before
    assert len(synced) > before  # closing always fsyncs


def test_close_if_older_also_closes_a_file_with_enough_records(tmp_path: Path) -> None:
    f = factory()
    w = RotatingWarcWriter(tmp_path, factory=f, fsync=False)
    for i in range(3):
        w.write_many(exchange(f, i))  # two records each
    assert w.current_records == 6
    assert w.close_if_older(3600, records=7) is None  # young, and fewer records
    assert w.close_if_older(3600, records=6) is not None
    assert w.current_records == 0
    w.close()
