"""`linkarchive export wacz`: WACZ 1.1.1 packages that py-wacz validates, records unchanged."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from archive import (
    RecordFactory,
    RotatingWarcWriter,
    StoredRecord,
    iter_records,
    read_cdxj,
    read_record,
    record_id,
    verify_record,
)
from archive.wacz import Member, Page, WaczError, write_wacz
from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, Media, PageMetadataRow
from pipeline.catalog.queries import Selection, select_links
from pipeline.cli import main
from pipeline.config import paths
from pipeline.crawlcontext import METADATA_FORMAT

# The console script, not `python -m wacz.main`: py-wacz's module entry points drop
# main()'s return value, so they exit 0 even when validation fails.
WACZ = Path(sys.executable).with_name("wacz")
FILES = {
    "archive/data.warc.gz",
    "indexes/index.cdxj",
    "pages/pages.jsonl",
    "datapackage.json",
    "datapackage-digest.json",
}


def wacz_validate(path: Path) -> None:
    if not WACZ.exists():
        pytest.skip("py-wacz is not installed (pip install wacz)")
    result = subprocess.run(
        [str(WACZ), "validate", "-f", str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation succeeded" in result.stdout, result.stdout


@dataclass
class Package:
    """A package read back: its datapackage and the records of archive/data.warc.gz."""

    datapackage: dict[str, Any]
    pages: list[dict[str, Any]]
    records: dict[str, StoredRecord]  # by WARC-Record-ID
    warc: Path


def read_package(path: Path, tmp_path: Path) -> Package:
    """Open a package and check everything that does not need the catalog."""
    with zipfile.ZipFile(path) as zf:
        assert {info.filename for info in zf.infolist()} == FILES
        for name in ("archive/data.warc.gz", "indexes/index.cdxj"):
            assert zf.getinfo(name).compress_type == zipfile.ZIP_STORED
        contents = {name: zf.read(name) for name in FILES}
    datapackage = json.loads(contents["datapackage.json"])
    assert datapackage["profile"] == "data-package"
    assert datapackage["wacz_version"] == "1.1.1"
    assert datapackage["software"].startswith("linkarchive")
    assert datapackage["title"]
    datetime.strptime(datapackage["created"], "%Y-%m-%dT%H:%M:%SZ")
    resources = {r["path"]: r for r in datapackage["resources"]}
    assert set(resources) == FILES - {"datapackage.json", "datapackage-digest.json"}
    for name, resource in resources.items():
        assert resource["name"] == Path(name).name
        assert resource["hash"] == "sha256:" + hashlib.sha256(contents[name]).hexdigest()
        assert resource["bytes"] == len(contents[name])
    digest = json.loads(contents["datapackage-digest.json"])
    assert digest == {
        "path": "datapackage.json",
        "hash": "sha256:" + hashlib.sha256(contents["datapackage.json"]).hexdigest(),
    }

    warc = tmp_path / f"{path.stem}-data.warc.gz"
    warc.write_bytes(contents["archive/data.warc.gz"])
    records: dict[str, StoredRecord] = {}
    offsets: dict[int, tuple[int, StoredRecord]] = {}
    for location, record in iter_records(warc):  # strict: the whole file is records
        assert verify_record(record) == [], location
        assert location.record_id not in records
        records[location.record_id] = record
        offsets[location.offset] = (location.length, record)

    index = tmp_path / f"{path.stem}-index.cdxj"
    index.write_bytes(contents["indexes/index.cdxj"])
    lines = index.read_text(encoding="utf-8").splitlines()
    assert lines == sorted(lines)
    indexed = set()
    for _key, _stamp, fields in read_cdxj(index):
        assert fields["filename"] == "data.warc.gz"
        offset = int(fields["offset"])
        length, record = offsets[offset]
        assert int(fields["length"]) == length
        assert read_record(warc, offset).record_id == record.record_id
        assert record.target_uri == fields["url"]
        indexed.add(record.record_id)
    replayable = {rid for rid, r in records.items() if r.rec_type in ("response", "revisit")}
    assert indexed == replayable  # and no metadata JSON in the replay index

    page_lines = contents["pages/pages.jsonl"].decode("utf-8").splitlines()
    assert json.loads(page_lines[0]) == {
        "format": "json-pages-1.0",
        "id": "pages",
        "title": "All Pages",
    }
    return Package(datapackage, [json.loads(line) for line in page_lines[1:]], records, warc)


def source_blocks(home: Path) -> dict[str, bytes]:
    """Every record block of a data home's WARC files, by WARC-Record-ID."""
    return {
        location.record_id: record.block
        for warc in sorted(paths(home).warcs.glob("*.warc.gz"))
        for location, record in iter_records(warc)
    }


def check_against_catalog(
    package: Package, home: Path, selection: Selection, run_id: int | None = None
) -> list[Capture]:
    """The package holds exactly the selection's pages, and everything its captures need.

    Returns the catalog's captures of the selected links (restricted to the run).
    """
    blocks = source_blocks(home)
    records = package.records
    for rid, record in records.items():
        assert record.block == blocks[rid]  # byte-for-byte the archived record
    with session_scope(paths(home).database_url) as session:
        links = select_links(session, selection)
        link_ids = {link.id for link in links}
        query = select(Capture).where(Capture.link_id.in_(link_ids))
        if run_id is not None:
            query = query.where(Capture.run_id == run_id)
        captures = list(session.scalars(query))
        media = select(Capture.record_id).join(Media, Media.capture_id == Capture.id)
        media = media.where(Media.link_id.in_(link_ids))
        if run_id is not None:
            media = media.where(Media.run_id == run_id)
        shared = set(session.scalars(media))
        titles = dict(
            session.execute(select(PageMetadataRow.capture_id, PageMetadataRow.title)).all()
        )
    assert {c.record_id for c in captures} <= set(records)
    assert shared <= set(records)  # images and media, also those fetched for another link
    pages = [c for c in captures if c.role == "page"]
    expected = {
        (c.url, c.captured_at.strftime("%Y-%m-%dT%H:%M:%SZ"), titles.get(c.id)) for c in pages
    }
    assert {(p["url"], p["ts"], p.get("title")) for p in package.pages} == expected
    assert len(package.pages) == len(pages)

    concurrent = {r.get("WARC-Concurrent-To") for r in records.values() if r.rec_type == "request"}
    for capture in captures:  # every selected exchange has its request
        assert capture.record_id in concurrent, capture.url
    warcinfos = {rid for rid, r in records.items() if r.rec_type == "warcinfo"}
    for rid, record in records.items():
        if record.rec_type != "warcinfo":
            assert record.get("WARC-Warcinfo-ID") in warcinfos, rid
        if record.rec_type == "revisit":  # the payload travels with the package
            assert record.get("WARC-Refers-To") in records, rid
        if record.rec_type == "metadata":  # crawl context of selected links only, complete
            context = json.loads(record.payload)
            assert context["format"] == METADATA_FORMAT
            assert context["link_id"] in link_ids
            assert run_id is None or context["run_id"] == run_id
            assert record.get("WARC-Refers-To") in records
            assert set(context["chain"]) <= set(records)
    return captures


def export(home: Path, target: Path, *args: str) -> None:
    code = main(["--home", str(home), "export", "wacz", *args, "-o", str(target)])
    assert code == 0


# --- the package writer alone -----------------------------------------------------------


def small_warc(directory: Path) -> list[Path]:
    factory = RecordFactory()
    writer = RotatingWarcWriter(directory, factory=factory, fsync=False)
    for n in range(3):
        url = f"http://127.0.0.1:9/{n}"
        body = f"<html><title>rally {n}</title></html>".encode()
        response = factory.response(
            url, 200, "OK", "HTTP/1.1", [("Content-Type", "text/html")], body
        )
        request = factory.request(
            url, "GET", f"/{n}", "HTTP/1.1", [("Host", "127.0.0.1:9")],
            concurrent_to=record_id(response),
        )  # fmt: skip
        writer.write_many([response, request])
    return writer.close()


def test_write_wacz_copies_members_unchanged(tmp_path: Path) -> None:
    (source,) = small_warc(tmp_path / "warcs")
    located = list(iter_records(source))
    members = [Member(source, loc.offset, loc.length) for loc, _ in located]
    when = datetime(2020, 10, 10, 12, 0, 0, tzinfo=UTC)
    pages = [
        Page("http://127.0.0.1:9/0", when, "rally 0", "p0"),
        Page("http://127.0.0.1:9/1", when),
    ]
    target = tmp_path / "out.wacz"
    summary = write_wacz(target, members + members[:2], pages, title="test", created=when)
    assert summary.records == len(members) == 7  # warcinfo + 3 exchanges, each once
    wacz_validate(target)
    package = read_package(target, tmp_path)
    assert [r.block for r in package.records.values()] == [r.block for _, r in located]
    assert package.warc.read_bytes() == source.read_bytes()  # same members, same order
    stamp = "2020-10-10T12:00:00Z"
    assert package.pages == [
        {"id": "p0", "url": "http://127.0.0.1:9/0", "ts": stamp, "title": "rally 0"},
        {"id": package.pages[1]["id"], "url": "http://127.0.0.1:9/1", "ts": stamp},
    ]
    assert len(package.pages[1]["id"]) == 20  # derived: py-wacz fails a page with no id
    assert package.datapackage["created"] == "2020-10-10T12:00:00Z"
    with pytest.raises(FileExistsError):
        write_wacz(target, members, pages, title="test")
    write_wacz(target, members[:3], pages, title="again", overwrite=True)
    assert read_package(target, tmp_path).datapackage["title"] == "again"


def test_records_of_uncompressed_warc_files_are_gzipped_unchanged(tmp_path: Path) -> None:
    """Other tools' files imported into the catalog may be plain ``.warc``."""
    (source,) = small_warc(tmp_path / "warcs")
    plain = tmp_path / "plain.warc"
    plain.write_bytes(gzip.decompress(source.read_bytes()))
    located = list(iter_records(plain))
    members = [Member(plain, loc.offset, loc.length) for loc, _ in located]
    target = tmp_path / "plain.wacz"
    write_wacz(target, members, [], title="plain")
    wacz_validate(target)
    package = read_package(target, tmp_path)
    assert [r.block for r in package.records.values()] == [r.block for _, r in located]
    assert gzip.decompress(package.warc.read_bytes()) == plain.read_bytes()


@pytest.mark.parametrize("shift", [(0, -1), (0, 1), (1, 0)], ids=["short", "long", "offset"])
def test_a_member_that_is_not_one_record_leaves_nothing(
    tmp_path: Path, shift: tuple[int, int]
) -> None:
    (source,) = small_warc(tmp_path / "warcs")
    members = [Member(source, loc.offset, loc.length) for loc, _ in iter_records(source)]
    bad = members[2]
    members[2] = Member(source, bad.offset + shift[0], bad.length + shift[1])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(WaczError):
        write_wacz(out / "x.wacz", members, [], title="test")
    assert list(out.iterdir()) == []  # no package, no temporary files


# --- the command, on the crawled replica world ------------------------------------------

SELECTIONS = [
    ("all", (), Selection()),
    ("germany", ("--country", "Germany"), Selection(country="Germany")),
    ("galleries", ("--kind", "photo_gallery"), Selection(kind="photo_gallery")),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "args", "selection"), SELECTIONS, ids=[s[0] for s in SELECTIONS])
def test_export_wacz_validates_and_holds_the_selection(
    crawled: dict[str, Any], tmp_path: Path, name: str, args: tuple[str, ...], selection: Selection
) -> None:
    home = crawled["home"]
    target = tmp_path / f"{name}.wacz"
    export(home, target, *args)
    wacz_validate(target)
    package = read_package(target, tmp_path)
    captures = check_against_catalog(package, home, selection)
    assert captures
    if name == "germany":
        assert package.datapackage["title"] == "linkarchive: Germany"
        assert len(package.pages) == 3  # Berlin, Munich and Hamburg's 404 page
    if name == "galleries":
        contexts = [
            json.loads(r.payload) for r in package.records.values() if r.rec_type == "metadata"
        ]
        assert {c["link"]["city"] for c in contexts} == {"Tallinn", "London"}
        photos = {
            r.target_uri
            for r in package.records.values()
            if r.rec_type == "response" and "/img/tallinn-" in (r.target_uri or "")
        }
        assert len(photos) >= 12  # every photo of Tallinn's three gallery pages


@pytest.mark.e2e
def test_export_includes_assets_shared_with_links_crawled_before(
    crawled: dict[str, Any], tmp_path: Path
) -> None:
    """An asset fetched once per crawl process belongs to the first link that needed it;
    the other links' metadata records name it, and their packages must hold it too."""
    home = crawled["home"]
    with session_scope(paths(home).database_url) as session:
        owners = dict(session.execute(select(Capture.record_id, Capture.link_id)).all())
        places = {
            link.id: (link.country.name, link.city.name if link.city else None, link.kind)
            for link in select_links(session, Selection())
        }
    borrowed: dict[int, set[str]] = {}  # link -> captures owned by a link of another place
    for warc in sorted(paths(home).warcs.glob("*.warc.gz")):
        for _, record in iter_records(warc):
            if record.rec_type == "metadata" and b"crawl-context" in record.payload:
                context = json.loads(record.payload)
                owner = owners.get(record.get("WARC-Refers-To") or "")
                if owner is not None and places[owner] != places[context["link_id"]]:
                    borrowed.setdefault(context["link_id"], set()).add(record.get("WARC-Refers-To"))
    assert borrowed  # the replica's shared static files are fetched once per process
    link_id = min(borrowed)
    country, city, kind = places[link_id]
    args = ["--country", country, "--kind", kind] + (["--city", city] if city else [])
    target = tmp_path / "shared.wacz"
    export(home, target, *args)
    wacz_validate(target)
    package = read_package(target, tmp_path)
    check_against_catalog(package, home, Selection(country=country, city=city, kind=kind))
    assert borrowed[link_id] <= set(package.records)


@pytest.mark.e2e
def test_export_of_a_later_run_carries_the_revisited_originals(
    world: Any, prefect_server: None, tmp_path: Path
) -> None:
    from flows.crawl import crawl_flow

    home = tmp_path / "home"
    first = crawl_flow(source=world.index_url, country="Lithuania", home=str(home))
    second = crawl_flow(country="Lithuania", home=str(home))
    assert first["status"] == second["status"] == "finished"
    target = tmp_path / "run2.wacz"
    export(home, target, "--country", "Lithuania", "--run", str(second["run_id"]))
    wacz_validate(target)
    package = read_package(target, tmp_path)
    selection = Selection(country="Lithuania")
    captures = check_against_catalog(package, home, selection, run_id=second["run_id"])
    revisits = [c for c in captures if c.record_type == "revisit"]
    assert revisits
    with session_scope(paths(home).database_url) as session:
        run1 = {
            c.record_id: c
            for c in session.scalars(select(Capture).where(Capture.run_id == first["run_id"]))
        }
    for revisit in revisits:
        assert revisit.refers_to in run1 and revisit.refers_to in package.records
        original = package.records[revisit.refers_to]
        assert original.rec_type == "response"
        assert original.get("WARC-Payload-Digest") == package.records[revisit.record_id].get(
            "WARC-Payload-Digest"
        )
    # Of run 1 only the originals came along: no pages, requests or metadata of it.
    from_run1 = {rid for rid in package.records if rid in run1}
    assert from_run1 == {r.refers_to for r in revisits}
    assert all(p["ts"] for p in package.pages) and len(package.pages) == 3


# --- other tools' files, imported into the catalog where they are ----------------------


@pytest.mark.skipif(shutil.which("wget") is None, reason="wget not installed")
@pytest.mark.parametrize("compression", [(), ("--no-warc-compression",)], ids=["gz", "plain"])
def test_export_of_captures_imported_from_wget(
    world: Any, home: Path, tmp_path: Path, compression: tuple[str, ...]
) -> None:
    urls = [world.url("news", path) for path in ("/ru/moskva-solidarnost", "/lt/vilnius-2")]
    folder = tmp_path / "wget"
    folder.mkdir()
    subprocess.run(
        ["wget", "-q", "-p", "--tries=1", "--warc-file", str(folder / "wget"), *compression,
         "-P", str(folder / "files"), *urls],
        check=False,
    )  # fmt: skip
    (warc,) = [p for p in folder.glob("wget.warc*") if p.is_file()]
    assert main(["seeds", "import", world.index_url]) == 0
    assert main(["warc", "import", str(warc)]) == 0
    target = tmp_path / "imported.wacz"
    assert main(["export", "wacz", "-o", str(target)]) == 0
    wacz_validate(target)
    package = read_package(target, tmp_path)
    source = {loc.record_id: r for loc, r in iter_records(warc)}
    assert all(r.block == source[rid].block for rid, r in package.records.items())
    assert sorted(p["url"] for p in package.pages) == sorted(urls)
    responses = [r for r in package.records.values() if r.rec_type == "response"]
    assert len(responses) == 2  # the pages: wget's requisites belong to no link
    for response in responses:  # wget links its response to the request, not back
        assert package.records[response.get("WARC-Concurrent-To")].rec_type == "request"


def test_a_revisit_of_a_record_not_in_the_catalog_is_packaged_with_a_warning(
    world: Any, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another tool's revisit may refer to a crawl that was never imported."""
    assert main(["seeds", "import", world.index_url]) == 0
    url = world.url("news", "/lt/vilnius-2")
    factory = RecordFactory()
    writer = RotatingWarcWriter(tmp_path / "foreign", factory=factory, fsync=False)
    writer.write(
        factory.revisit(
            url,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
            payload_digest="sha256:" + "0" * 64,
            refers_to="<urn:uuid:00000000-0000-0000-0000-000000000000>",
            refers_to_uri=url,
            refers_to_date="2020-10-10T12:00:00.000000Z",
        )
    )
    (warc,) = writer.close()
    assert main(["warc", "import", str(warc)]) == 0
    capsys.readouterr()
    target = tmp_path / "x.wacz"
    assert main(["export", "wacz", "--country", "Lithuania", "-o", str(target)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("linkarchive: warning: 1 revisit records refer to records not in")
    wacz_validate(target)
    package = read_package(target, tmp_path)
    assert [r.rec_type for r in package.records.values()] == ["warcinfo", "revisit"]
    assert [p["url"] for p in package.pages] == [url]


# --- bad input --------------------------------------------------------------------------


def one_line_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    code = main(args)
    _, err = capsys.readouterr()
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("linkarchive: error: ") and "Traceback" not in err
    return lines[0]


BAD_EXPORTS = [
    (("--country", "Atlantis"), "unknown country"),
    (("--city", "Atlantis"), "unknown city"),
    (("--kind", "podcast"), "podcast"),
    (("--run", "9999"), "no crawl run 9999"),
    (("--run", "0"), "--run"),
    (("--country", "Germany", "--kind", "video"), "no links match"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "message"), BAD_EXPORTS, ids=[" ".join(a) for a, _ in BAD_EXPORTS]
)
def test_bad_selection_gives_one_line(
    crawled: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    target = tmp_path / "x.wacz"
    home = str(crawled["home"])
    line = one_line_error(capsys, ["--home", home, "export", "wacz", *args, "-o", str(target)])
    assert message in line
    assert not target.exists()


@pytest.mark.e2e
def test_bad_output_gives_one_line(
    crawled: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--home", str(crawled["home"]), "export", "wacz"]
    assert "-o" in one_line_error(capsys, base)
    assert ".wacz" in one_line_error(capsys, [*base, "-o", str(tmp_path / "x.zip")])
    missing = tmp_path / "no" / "such" / "x.wacz"
    assert "no directory" in one_line_error(capsys, [*base, "-o", str(missing)])
    assert not missing.parent.exists()
    existing = tmp_path / "x.wacz"
    existing.write_bytes(b"keep me")
    assert "--force" in one_line_error(capsys, [*base, "--kind", "video", "-o", str(existing)])
    assert existing.read_bytes() == b"keep me"
    assert main([*base, "--kind", "video", "-o", str(existing), "--force"]) == 0
    capsys.readouterr()
    wacz_validate(existing)


def test_uncrawled_links_give_one_line(
    world: Any, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["seeds", "import", world.index_url]) == 0
    target = tmp_path / "x.wacz"
    line = one_line_error(capsys, ["export", "wacz", "--country", "Germany", "-o", str(target)])
    assert "no captures" in line
    assert not target.exists()
