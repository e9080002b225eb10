"""Bringing in WARC and ARC files written by other tools, where they are: pywb's sample
archive (WARC/1.0, sha1 digests, revisits, ARC files, bad records), warcprox running as a
real proxy, wget, and warcio's own writer (WARC/1.1, a server-not-modified revisit).

The inputs come from the package registries: `make test-inputs` (part of `make test`)
downloads pywb's sdist and installs warcprox into .venv-warcprox; `.ci/run` installs wget.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections import Counter
from contextlib import closing, redirect_stderr
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from sqlalchemy import func, select
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.catalog import session_scope
from pipeline.catalog.models import (
    Capture,
    Country,
    Link,
    LinkSource,
    PageMetadataRow,
    SearchDocument,
    Source,
    WarcFile,
)
from pipeline.cli import main
from pipeline.config import paths
from pipeline.replica.content import LINKS
from pipeline.retrieval import read_payload

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["/ru/moskva-solidarnost", "/en/usa-rallies", "/lt/vilnius-2"]
TITLES = {spec.path: spec.title for spec in LINKS}
# warcprox refuses to fetch from 127.0.0.1 unless this class attribute allows it (its
# own tests set it the same way); the test servers are all on 127.0.0.1.
_WARCPROX = (
    "import sys, warcprox.main, warcprox.warcproxy\n"
    "warcprox.warcproxy.WarcProxyHandler.allow_localhost = True\n"
    "sys.exit(warcprox.main.main(['warcprox', *sys.argv[1:]]))\n"
)


# --- the inputs ---------------------------------------------------------------------------


def _pywb_sample() -> Path:
    found = sorted((ROOT / ".cache" / "test-inputs").glob("pywb-*/sample_archive/warcs"))
    if not found or not (found[-1] / "example.warc").is_file():
        pytest.fail("pywb's sample archive is missing: `make test-inputs` downloads it")
    return found[-1]


def _warcprox_python() -> Path:
    python = ROOT / ".venv-warcprox" / "bin" / "python"
    if not (ROOT / ".venv-warcprox" / "bin" / "warcprox").is_file():
        pytest.fail("warcprox is not installed: `make test-inputs` installs it into .venv-warcprox")
    return python


def _wget(world: Any, folder: Path, *extra: str, pages: list[str] = PAGES) -> Path:
    if shutil.which("wget") is None:
        pytest.fail("wget is not installed: `.ci/run` installs it (apt-get install wget)")
    urls = [world.url("news", path) for path in pages]
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["wget", "-q", "-p", "--tries=1", "--warc-file", str(folder / "wget"), *extra,
         "-P", str(folder / "files"), *urls],
        check=False,
    )  # fmt: skip
    (warc,) = [p for p in folder.glob("wget.warc*") if p.is_file()]
    return warc


def _warcprox(world: Any, folder: Path, pages: list[str]) -> Path:
    """Fetch ``pages`` twice, and an image, through a real warcprox; its WARC file."""
    python = _warcprox_python()
    port = free_port()
    folder.mkdir(parents=True)
    log = (folder / "warcprox.log").open("wb")
    proc = subprocess.Popen(
        [str(python), "-c", _WARCPROX, "--address", "127.0.0.1", "--port", str(port),
         "--dir", str(folder / "warcs"), "--gzip", "--base32", "--prefix", "wp",
         "--dedup-db-file", str(folder / "dedup.sqlite")],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, (folder / "warcprox.log").read_text()
                assert time.monotonic() < deadline, "warcprox did not start"
                time.sleep(0.2)
        proxy = urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{port}"})
        opener = urllib.request.build_opener(proxy)
        for visit in range(2):  # the second time, warcprox writes revisits
            for path in pages:
                with opener.open(world.url("news", path), timeout=30) as response:
                    assert response.status == 200
            while visit == 0 and _deduplicated(folder / "dedup.sqlite") < len(pages):
                assert time.monotonic() < deadline + 60, "warcprox did not store the pages"
                time.sleep(0.1)  # it learns payload digests after writing them
    finally:
        proc.send_signal(signal.SIGTERM)  # warcprox finishes and closes its WARC file
        proc.wait(timeout=60)
        log.close()
    (warc,) = (folder / "warcs").glob("*.warc.gz")
    return warc


def _deduplicated(db: Path) -> int:
    """How many payload digests warcprox's dedup database holds."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("select count(*) from dedup").fetchone()[0]


# --- what a user sees ---------------------------------------------------------------------


def _capture_kind(rec_type: str, uri: str) -> bool:
    """The records a replay tool indexes as captures of a URL."""
    return rec_type in ("response", "revisit") or (
        rec_type == "resource" and uri.startswith(("http:", "https:"))
    )


def _warcio_captures(path: Path) -> tuple[int, str]:
    """How many captures warcio's own iterator reads in ``path``, and what it says."""
    stderr = io.StringIO()
    count = 0
    with redirect_stderr(stderr), path.open("rb") as fh:
        for record in ArchiveIterator(fh, arc2warc=True):
            uri = record.rec_headers.get_header("WARC-Target-URI") or ""
            count += _capture_kind(record.rec_type, uri)
    return count, stderr.getvalue()


def _search(capsys: pytest.CaptureFixture[str], query: str) -> list[dict]:
    capsys.readouterr()
    assert main(["search", query, "--format", "jsonl", "--all"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def _word(title: str) -> str:
    return max(re.findall(r"\w+", title), key=len)


def _counts(home: Path) -> dict[str, int]:
    tables = (Capture, Link, LinkSource, PageMetadataRow, SearchDocument, Source, WarcFile)
    with session_scope(paths(home).database_url) as session:
        return {
            t.__tablename__: session.scalar(select(func.count()).select_from(t)) for t in tables
        }


def _import(capsys: pytest.CaptureFixture[str], *sources: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["warc", "import", *map(str, sources)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# --- pywb's sample archive ----------------------------------------------------------------


def test_pywb_sample_archive_is_read_as_warcio_reads_it(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = _pywb_sample()
    files = sorted(p for p in sample.iterdir() if p.name.endswith((".warc", ".warc.gz", ".arc",
                                                                    ".arc.gz")))  # fmt: skip
    expected = {p.name: _warcio_captures(p) for p in files}

    code, out, err = _import(capsys, sample)

    assert code == 0, err
    # example.warc: a request record's Content-Length is short; warcio reads past it, and
    # so does the import, with a warning at the offset where the stray bytes start.
    warcio_says = re.search(r"Offset: (\d+)", expected["example.warc"][1])
    assert warcio_says, "warcio reads example.warc past a bad record"
    warnings = [line for line in err.splitlines() if line.startswith("linkarchive: warning:")]
    assert any(f"example.warc: offset {warcio_says.group(1)}: " in w for w in warnings), err
    assert any("bad.arc: offset " in w and "invalid length" in w for w in warnings), err
    assert "skipped:" not in err
    imported = int(re.search(r"Imported (\d+) files", out).group(1))
    captures = int(re.search(r": (\d+) captures", out).group(1))
    duplicates = int(m.group(1)) if (m := re.search(r"(\d+) records indexed already", out)) else 0
    assert imported == len(files)
    # Every capture warcio reads is in the catalog, once (the sample repeats some records,
    # same WARC-Record-ID, in several files).
    assert captures + duplicates == sum(n for n, _ in expected.values())

    where = paths(home)
    with session_scope(where.database_url) as session:
        rows = session.scalars(select(Capture)).all()
        assert len(rows) == captures
        by_file = Counter(Path(c.warc_file).name for c in rows)
        for arc in ("example.arc", "example.arc.gz", "bad.arc"):  # ARC files, read as WARC
            assert by_file[arc] == expected[arc][0]
        arc_page = next(c for c in rows if c.warc_file.endswith("example.arc.gz"))
        revisits = [c for c in rows if c.record_type == "revisit"]
        assert revisits and all(c.refers_to for c in revisits)  # sha1 digests, no Refers-To
        agnostic = next(c for c in rows if c.warc_file.endswith("url-agnostic-revisit.warc.gz"))
        unknown = session.scalars(select(Country).where(Country.name == "Unknown")).one()
        assert session.scalars(select(Link).where(Link.country_id != unknown.id)).all() == []
        assert session.scalars(select(Source.location)).all() == ["imported"]
    assert arc_page.http_status == 200
    assert b"Example Domain" in read_payload(where, arc_page.id).body
    assert b"Example Domain" in read_payload(where, agnostic.id).body  # another URL's payload

    found = {row["url"]: row for row in _search(capsys, "Reserved Domains")}
    assert "http://www.iana.org/domains/reserved" in found
    row = found["http://www.iana.org/domains/reserved"]
    assert row["title"] == "IANA-managed Reserved Domains"
    assert (row["country"], row["city"], row["status"]) == ("Unknown", None, "alive")
    assert "http://example.com/" in {row["url"] for row in _search(capsys, "Example Domain")}

    before = _counts(home)
    code, out, _ = _import(capsys, sample)
    assert code == 0 and f"Imported 0 files ({len(files)} already in the catalog)" in out
    assert _counts(home) == before


def test_a_file_none_of_whose_records_can_be_read_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pywb's deliberately bad file: a whole WARC gzipped as one stream (warcio stops too)."""
    bad = _pywb_sample() / "example-bad.warc.gz.bad"
    code, out, err = _import(capsys, bad)
    assert code == 1
    assert err.strip() == (
        f"linkarchive: skipped: {bad}: its records are compressed as one gzip stream, not "
        "one gzip member each, so none can be read by offset (`warcio recompress` makes a "
        "copy that can be imported); skipped"
    )
    assert "Imported 0 files" in out
    assert _counts(home)["warc_files"] == 0


# --- warcprox -----------------------------------------------------------------------------


def test_warcprox_captures_become_searchable_links(
    world: Any, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warc = _warcprox(world, tmp_path / "warcprox", PAGES)
    expected, _ = _warcio_captures(warc)
    assert expected == 2 * len(PAGES)

    code, out, err = _import(capsys, warc)

    assert code == 0 and err == ""
    assert f": {expected} captures" in out and f"{len(PAGES)} new links" in out
    where = paths(home)
    for path in PAGES:
        url = world.url("news", path)
        (row,) = [r for r in _search(capsys, _word(TITLES[path])) if r["url"] == url]
        assert row["title"] == TITLES[path]
        assert (row["country"], row["city"], row["kind"]) == ("Unknown", None, "report")
        with session_scope(where.database_url) as session:
            captures = session.scalars(select(Capture).where(Capture.url == url)).all()
        assert sorted(c.record_type for c in captures) == ["response", "revisit"]
        (original,) = [c for c in captures if c.record_type == "response"]
        (revisit,) = [c for c in captures if c.record_type == "revisit"]
        assert row["capture_id"] in (original.id, revisit.id)  # the latest (same second)
        assert revisit.refers_to == original.record_id
        assert read_payload(where, revisit.id).body == read_payload(where, original.id).body

    from webkit import client_as, make_app

    researcher = client_as(make_app(home), "researcher")
    page = researcher.get("/search", params={"q": _word(TITLES[PAGES[1]])})
    assert page.status_code == 200 and TITLES[PAGES[1]] in page.text
    link_id = next(r["link_id"] for r in _search(capsys, _word(TITLES[PAGES[1]])))
    assert researcher.get(f"/links/{link_id}").status_code == 200


# --- wget ---------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [(), ("--no-warc-compression",)], ids=["gz", "plain"])
def test_wget_warcs_are_indexed_in_place_with_metadata(
    world: Any,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    compression: tuple[str, ...],
) -> None:
    warc = _wget(world, tmp_path / "wget", *compression)
    before = hashlib.sha256(warc.read_bytes()).hexdigest()
    assert main(["seeds", "import", world.index_url]) == 0

    code, out, _ = _import(capsys, tmp_path / "wget")
    assert code == 0 and "Imported 1 files" in out
    assert "0 new links" in out  # its pages are links the catalog lists already
    assert hashlib.sha256(warc.read_bytes()).hexdigest() == before  # not altered
    assert not list((home / "warcs").glob("*wget*"))  # not copied

    where = paths(home)
    with session_scope(where.database_url) as session:
        (stored,) = session.scalars(select(WarcFile).where(WarcFile.path == str(warc)))
        for path in PAGES:
            url = world.url("news", path)
            capture = session.scalars(select(Capture).where(Capture.url == url)).one()
            meta = session.get(PageMetadataRow, capture.id)
            assert meta is not None and meta.title == TITLES[path]
            link = session.scalars(select(Link).where(Link.url == url)).one()
            assert capture.link_id == link.id and link.last_capture_id == capture.id
            assert capture.warc_file == stored.name
        moscow = session.scalars(select(Capture).where(Capture.url == world.url("news", PAGES[0])))
        moscow_id = moscow.one().id
    assert TITLES[PAGES[0]].encode("cp1251") in read_payload(where, moscow_id).body
    # The seeded links, never crawled, are found by their imported text.
    url = world.url("news", PAGES[1])
    assert url in {r["url"] for r in _search(capsys, _word(TITLES[PAGES[1]]))}

    code, out, _ = _import(capsys, warc)  # again: nothing new
    assert code == 0 and "(1 already in the catalog)" in out


def test_wget_pages_the_catalog_does_not_list_become_searchable(
    world: Any, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warc = _wget(world, tmp_path / "wget")
    expected, _ = _warcio_captures(warc)

    code, out, err = _import(capsys, warc)

    assert code == 0 and err == ""
    assert f": {expected} captures" in out and f"{len(PAGES)} new links" in out
    for path in PAGES:
        rows = _search(capsys, _word(TITLES[path]))
        assert world.url("news", path) in {r["url"] for r in rows}
    with session_scope(paths(home).database_url) as session:
        linked = session.scalars(select(Link.url)).all()
    assert sorted(linked) == sorted(world.url("news", p) for p in PAGES)  # pages, not requisites


def test_damaged_files_are_read_past_their_bad_records(
    world: Any, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _wget(world, tmp_path / "good")
    second = _wget(world, tmp_path / "bad")  # another crawl: its own record ids
    responses: list[tuple[int, str]] = []
    with second.open("rb") as fh:
        records = ArchiveIterator(fh)
        for record in records:
            if record.rec_type == "response":
                uri = record.rec_headers.get_header("WARC-Target-URI")
                responses.append((records.get_record_offset(), uri))
    hit = responses[len(responses) // 2][0]
    data = bytearray(second.read_bytes())
    data[hit + 40 : hit + 80] = b"\0" * 40  # damage one gzip member in the middle
    damaged = second.with_name("damaged.warc.gz")
    damaged.write_bytes(bytes(data))
    second.unlink()

    code, out, err = _import(capsys, tmp_path / "good", damaged)

    assert code == 0, err  # every readable record was imported
    (warning,) = [line for line in err.splitlines() if line.startswith("linkarchive:")]
    assert warning.startswith(f"linkarchive: warning: {damaged}: offset {hit}: ")
    assert "skipped, read on at offset" in warning
    with session_scope(paths(home).database_url) as session:
        names = set(session.scalars(select(WarcFile.name)))
        offsets = set(
            session.scalars(select(Capture.warc_offset).where(Capture.warc_file == str(damaged)))
        )
    assert {str(good), str(damaged)} <= names
    assert hit not in offsets
    assert responses[-1][0] in offsets  # a record after the damage

    (tmp_path / "notes.warc").write_text("these are not WARC records\n")
    code, _, err = _import(capsys, tmp_path / "notes.warc")
    assert code == 1
    assert err.strip() == (
        f"linkarchive: skipped: {tmp_path / 'notes.warc'}: not a readable WARC or ARC file "
        "(bytes that are no WARC or ARC record); skipped"
    )


# --- warcio's writer: WARC/1.1, sha1, a server-not-modified revisit -------------------------


def test_warc_1_1_with_a_server_not_modified_revisit(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http://127.0.0.1:9/rally-in-gdansk"
    body = b"<html><head><title>Solidarity chain in Gdansk</title></head><body>x</body></html>"
    path = tmp_path / "other.warc.gz"
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True, warc_version="1.1")  # sha1, base32 digests
        head = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        original = writer.create_warc_record(url, "response", payload=io.BytesIO(body),
                                             http_headers=head)  # fmt: skip
        writer.write_record(original)
        not_modified = StatusAndHeaders("304 Not Modified", [], protocol="HTTP/1.1")
        revisit = writer.create_revisit_record(
            url,
            digest=original.rec_headers.get_header("WARC-Payload-Digest"),
            refers_to_uri=url,
            refers_to_date=original.rec_headers.get_header("WARC-Date"),
            http_headers=not_modified,
        )
        revisit.rec_headers.replace_header(
            "WARC-Profile", "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
        )
        revisit.rec_headers.remove_header("WARC-Payload-Digest")  # this profile needs none
        writer.write_record(revisit)
    assert original.rec_headers.get_header("WARC-Payload-Digest").startswith("sha1:")

    code, out, err = _import(capsys, path)

    assert code == 0 and err == "" and ": 2 captures" in out
    where = paths(home)
    with session_scope(where.database_url) as session:
        stored = {c.record_type: c for c in session.scalars(select(Capture))}
    assert stored["revisit"].http_status == 304
    assert stored["revisit"].refers_to == original.rec_headers.get_header("WARC-Record-ID")
    assert read_payload(where, stored["revisit"].id).body == body
    (row,) = _search(capsys, "Gdansk")
    assert row["url"] == url and row["capture_id"] == stored["revisit"].id


# --- catalog rebuild ----------------------------------------------------------------------


def test_imported_files_survive_a_rebuild_or_are_reported(
    world: Any, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    seeds = tmp_path / "seeds.csv"  # one curated link; its seed import is a WARC file
    seeds.write_text(
        f"country,city,kind,label,url\nGermany,Berlin,report,Moscow,{world.url('news', PAGES[0])}\n"
    )
    assert main(["seeds", "import", str(seeds)]) == 0
    kept = _wget(world, tmp_path / "kept", pages=PAGES[:1])
    extra = PAGES[1:2]  # not a curated link: the import makes it one
    moved = _wget(world, tmp_path / "moved", pages=extra)
    assert _import(capsys, kept, moved)[0] == 0
    assert _import(capsys, moved)[0] == 0  # already imported: no second ledger line
    ledger = [json.loads(line) for line in (home / "imports.jsonl").read_text().splitlines()]
    assert [(e["path"], e["size"]) for e in ledger] == [
        (str(p), p.stat().st_size) for p in sorted([kept, moved])
    ]
    assert all(e["sha256"] == hashlib.sha256(Path(e["path"]).read_bytes()).hexdigest()
               for e in ledger)  # fmt: skip
    with session_scope(paths(home).database_url) as session:
        links = sorted(session.execute(select(Link.id, Link.url, Link.status)).tuples())
        captures = sorted(session.execute(select(Capture.record_id, Capture.link_id)).tuples())

    rebuilt = f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"
    capsys.readouterr()
    assert main(["catalog", "rebuild", "--into", rebuilt]) == 0
    out, err = capsys.readouterr()
    assert "Rebuilt from 3 WARC files" in out and "not restored" not in err, err
    with session_scope(rebuilt) as session:
        assert sorted(session.execute(select(Link.id, Link.url, Link.status)).tuples()) == links
        assert sorted(session.execute(select(Capture.record_id, Capture.link_id)).tuples()) == (
            captures
        )
    monkeypatch.setenv("LINKARCHIVE_DATABASE_URL", rebuilt)
    assert world.url("news", extra[0]) in {
        r["url"] for r in _search(capsys, _word(TITLES[extra[0]]))
    }
    monkeypatch.delenv("LINKARCHIVE_DATABASE_URL")

    moved.rename(tmp_path / "elsewhere.warc.gz")
    kept.write_bytes(kept.read_bytes() + b"\r\n")
    capsys.readouterr()
    assert main(["catalog", "rebuild", "--into", f"sqlite:///{tmp_path / 'again.sqlite'}"]) == 0
    err = capsys.readouterr().err
    lost = [line for line in err.splitlines() if "not restored: imported file" in line]
    assert len(lost) == 2, err
    assert any(f"imported file {moved}: gone" in line for line in lost)
    assert any(f"imported file {kept}: changed since it was imported" in line for line in lost)
