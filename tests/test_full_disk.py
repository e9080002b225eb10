"""A full disk: the crawl stops with one line, nothing archived is damaged, and
`crawl --resume` finishes the run once there is room.

The data home is a small tmpfs (root may mount one; the test is skipped where it may
not). Sixty links of 1 MiB of incompressible bytes each do not fit in it. Two ways to
meet the end of the disk: a write that fails (``LINKARCHIVE_MIN_FREE_SPACE=0``), and the
crawl's own stop when less than the minimum is left.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from wireserver import Scenario, WireServer, response

from archive import iter_records
from pipeline.catalog import session_scope
from pipeline.catalog.models import CrawlOutcome, CrawlRun, WarcFile
from pipeline.config import paths

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

LINKARCHIVE = str(Path(sys.executable).with_name("linkarchive"))
LINKS = 60
MIB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def site() -> Iterator[WireServer]:
    kind = [("Content-Type", "application/octet-stream")]
    table = {f"/p/{i}": Scenario(response("200 OK", kind, random.Random(i).randbytes(MIB)))
             for i in range(LINKS)}  # fmt: skip
    with WireServer(table) as server:
        yield server


def _crawl(home: Path, site: WireServer, min_free: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LINKARCHIVE_MIN_FREE_SPACE": str(min_free),
           "LINKARCHIVE_BROWSER": "never"}  # fmt: skip
    if not args:
        seeds = home.parent / "seeds.csv"
        rows = [f"Germany,Berlin,report,P{i},{site.base_url}/p/{i}\n" for i in range(LINKS)]
        seeds.write_text("country,city,kind,label,url\n" + "".join(rows))
        subprocess.run([LINKARCHIVE, "--home", str(home), "seeds", "import", str(seeds)],
                       env=env, check=True, capture_output=True)  # fmt: skip
    return subprocess.run([LINKARCHIVE, "--home", str(home), "crawl", *args], env=env,
                          capture_output=True, text=True, timeout=400)  # fmt: skip


def _assert_nothing_damaged(home: Path, *, all_indexed: bool = True) -> None:
    """Every file closed and whole, the catalog sound and listing only files that exist
    (with ``all_indexed``, every one: a stop on a full disk may leave a closed file the
    catalog had no room to index yet, which the resume indexes)."""
    where = paths(home)
    assert not list(where.warcs.glob("*.open")), "every file closed or recovered"
    with sqlite3.connect(where.home / "catalog.sqlite") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    with session_scope(where.database_url) as session:
        listed = {Path(f.path).name for f in session.scalars(select(WarcFile))}
    files = sorted(where.warcs.glob("*.warc.gz"))
    assert listed == {f.name for f in files} if all_indexed else listed <= {f.name for f in files}
    for path in files:
        list(iter_records(path))  # every record whole (raises otherwise)
        check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", str(path)],
                               capture_output=True, text=True)  # fmt: skip
        assert check.returncode == 0, check.stdout


def _outcomes(home: Path) -> tuple[str, int]:
    with session_scope(paths(home).database_url) as session:
        run = session.scalars(select(CrawlRun)).one()
        count = session.scalar(select(func.count()).select_from(CrawlOutcome))
        return run.status, count or 0


@pytest.mark.parametrize("min_free", [0, 12 * MIB], ids=["write-fails", "stops-before"])
def test_a_full_disk_stops_the_crawl_in_one_line_and_resume_finishes_it(
    small_disk: Path, site: WireServer, min_free: int
) -> None:
    home = small_disk / "home"
    first = _crawl(home, site, min_free)
    assert first.returncode == 1, first.stdout + first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("linkarchive: error: ") and "disk" in last and "full" in last
    assert "crawl --resume" in last
    assert "Traceback" not in first.stderr + first.stdout
    status, archived = _outcomes(home)
    # "running" when even closing the run found no room: its flow is gone, so `--resume`
    # finds it by its free liveness lock. With no room left, none may be indexed yet.
    assert status in ("interrupted", "running") and archived < LINKS
    _assert_nothing_damaged(home, all_indexed=False)
    fetched = len(site.exchanges)

    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    resumed = _crawl(home, site, min_free, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _outcomes(home) == ("finished", LINKS)
    # The resume fetched what had no outcome (and what the stop cut off), not the rest.
    assert len(site.exchanges) - fetched <= LINKS - archived + 2
    _assert_nothing_damaged(home)
