"""Bringing in WARC files written by another tool (wget, here), where they are."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, Link, PageMetadataRow, WarcFile
from pipeline.cli import main
from pipeline.config import paths
from pipeline.replica.content import LINKS

pytestmark = pytest.mark.skipif(shutil.which("wget") is None, reason="wget not installed")

PAGES = ["/ru/moskva-solidarnost", "/en/usa-rallies", "/lt/vilnius-2"]


def _wget(world: Any, folder: Path, *extra: str) -> Path:
    urls = [world.url("news", path) for path in PAGES]
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["wget", "-q", "-p", "--tries=1", "--warc-file", str(folder / "wget"), *extra,
         "-P", str(folder / "files"), *urls],
        check=False,
    )  # fmt: skip
    (warc,) = [p for p in folder.glob("wget.warc*") if p.is_file()]
    return warc


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("compression", [(), ("--no-warc-compression",)], ids=["gz", "plain"])
def test_wget_warcs_are_indexed_in_place_with_metadata(
    world: Any,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    compression: tuple[str, ...],
) -> None:
    warc = _wget(world, tmp_path / "wget", *compression)
    before = _digest(warc)
    assert main(["seeds", "import", world.index_url]) == 0

    assert main(["warc", "import", str(tmp_path / "wget")]) == 0
    assert "Imported 1 WARC files" in capsys.readouterr().out
    assert _digest(warc) == before  # not altered
    assert not list((home / "warcs").glob("*wget*"))  # not copied

    titles = {spec.path: spec.title for spec in LINKS}
    with session_scope(paths(home).database_url) as session:
        (stored,) = session.scalars(select(WarcFile).where(WarcFile.path == str(warc)))
        for path in PAGES:
            url = world.url("news", path)
            capture = session.scalars(select(Capture).where(Capture.url == url)).one()
            meta = session.get(PageMetadataRow, capture.id)
            assert meta is not None and meta.title == titles[path]
            link = session.scalars(select(Link).where(Link.url == url)).one()
            assert capture.link_id == link.id
            assert capture.warc_file == stored.name
        moscow = session.scalars(
            select(Capture).where(Capture.url == world.url("news", PAGES[0]))
        ).one()

    out = tmp_path / "moscow.html"
    assert main(["get", str(moscow.id), "-o", str(out)]) == 0
    assert titles[PAGES[0]].encode("cp1251") in out.read_bytes()

    assert main(["warc", "import", str(warc)]) == 0  # again: nothing new
    assert "(1 already in the catalog)" in capsys.readouterr().out


def test_damaged_and_foreign_files_are_reported_and_the_rest_imported(
    world: Any, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _wget(world, tmp_path / "good")
    second = _wget(world, tmp_path / "bad")  # another crawl: its own record ids
    damaged = second.with_name("cut.warc.gz")
    data = second.read_bytes()
    second.unlink()
    damaged.write_bytes(data[: len(data) * 2 // 3])
    (tmp_path / "bad" / "notes.warc").write_text("these are not WARC records\n")
    capsys.readouterr()

    code = main(["warc", "import", str(tmp_path / "good"), str(tmp_path / "bad")])

    assert code == 1
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("linkarchive:")]
    assert len(skipped) == 2
    assert any("cut.warc.gz: damaged at offset" in line for line in skipped)
    assert any("notes.warc: not a readable WARC file" in line for line in skipped)
    assert "Traceback" not in captured.err
    with session_scope(paths(home).database_url) as session:
        names = set(session.scalars(select(WarcFile.name)))
        cut_captures = session.scalars(
            select(Capture).where(Capture.warc_file == str(damaged))
        ).all()
    assert str(good) in names and str(damaged) in names
    assert cut_captures  # the records before the damage
