"""Interrupted and concurrent crawls on one data home: Ctrl-C during `linkarchive crawl`
(SIGINT as a terminal sends it) and `crawl --resume`; two crawls at once. Real CLI
processes and a slow synthetic site on 127.0.0.2 and up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.cluster import descendants
from bench.site import Site
from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, CrawlOutcome, CrawlRun, Link, WarcFile
from pipeline.config import paths

LINKARCHIVE = str(Path(sys.executable).with_name("linkarchive"))


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_ctrl_c_stops_the_crawl_keeps_what_it_archived_and_resume_finishes_it(
    tmp_path: Path,
) -> None:
    with Site(hosts=2, pages=40, latency_ms=400) as site:
        env = {**os.environ, "LINKARCHIVE_ALLOWED_HOSTS": ",".join(site.addresses),
               "LINKARCHIVE_CONCURRENT_REQUESTS_PER_HOST": "1"}  # fmt: skip
        home = tmp_path / "home"
        seeds = tmp_path / "seeds.csv"
        seeds.write_text("country,city,kind,label,url\n" + "".join(
            f"Germany,Berlin,report,R{i},{url}\n" for i, url in enumerate(site.urls)))  # fmt: skip
        command = [LINKARCHIVE, "--home", str(home)]
        subprocess.run([*command, "seeds", "import", str(seeds)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        crawl = subprocess.Popen([*command, "crawl"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)  # fmt: skip
        database = paths(home).database_url
        deadline = time.monotonic() + 180
        while _outcomes(database) < 3:  # some links archived and indexed
            assert crawl.poll() is None and time.monotonic() < deadline, crawl.stdout
            time.sleep(0.3)
        crawlers = [pid for pid in descendants(crawl.pid) if b"spiders.run" in _cmdline(pid)]
        crawlers += _crawl_processes(home)
        assert crawlers
        crawl.send_signal(signal.SIGINT)
        out, _ = crawl.communicate(timeout=120)
        assert crawl.returncode == 130, out
        assert "interrupted" in out and "--resume" in out and "Traceback" not in out
        assert not _crawl_processes(home)  # stopped, not left running
        assert not list(paths(home).warcs.glob("*.open"))  # closed or recovered
        with session_scope(database) as session:
            run = session.scalars(select(CrawlRun)).one()
            assert run.status == "interrupted"
            first = _outcomes(database)
            assert 0 < first < len(site.urls) == run.links_total
            assert run.links_done == first
        again = subprocess.run([*command, "crawl", "--resume"], env=env, capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
    with session_scope(database) as session:
        run = session.scalars(select(CrawlRun)).one()  # the same run, finished
        assert run.status == "finished" and run.links_done == len(site.urls)
        links = {link.id: link.url for link in session.scalars(select(Link))}
        per_link = dict(
            session.execute(
                select(CrawlOutcome.link_id, func.count()).group_by(CrawlOutcome.link_id)
            ).all()
        )
        assert per_link == dict.fromkeys(links, 1)
        pages = dict(
            session.execute(
                select(Capture.url, func.count())
                .where(Capture.url.in_(list(links.values())))
                .group_by(Capture.url)
            ).all()
        )
        assert pages == dict.fromkeys(links.values(), 1)  # nothing fetched twice
    nothing = subprocess.run([*command, "crawl", "--resume"], env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert nothing.returncode == 1 and "nothing to resume" in nothing.stderr


def _outcomes(database: str) -> int:
    try:
        with session_scope(database) as session:
            return session.scalar(select(func.count(CrawlOutcome.id))) or 0
    except Exception:  # the catalog is being created
        return 0


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _crawl_processes(home: Path) -> list[int]:
    """Crawl processes (and their Chromium) working for ``home``, wherever they run."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            command = _cmdline(int(entry.name))
            if b"spiders.run" in command and str(home).encode() in command:
                found.append(int(entry.name))
    return found


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_two_crawls_at_once_on_one_data_home_are_safe(tmp_path: Path) -> None:
    """Two `linkarchive crawl`s of different cities started together on one data home:
    both finish, each link gets one outcome in its own run, every WARC file is indexed
    once and none is left open."""
    with Site(hosts=4, pages=24, latency_ms=100) as site:
        env = {**os.environ, "LINKARCHIVE_ALLOWED_HOSTS": ",".join(site.addresses)}
        home = tmp_path / "home"
        seeds = tmp_path / "seeds.csv"
        seeds.write_text("country,city,kind,label,url\n" + "".join(
            f"Germany,{'Berlin' if i % 2 else 'Munich'},report,R{i},{url}\n"
            for i, url in enumerate(site.urls)))  # fmt: skip
        command = [LINKARCHIVE, "--home", str(home)]
        subprocess.run([*command, "seeds", "import", str(seeds)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        crawls = [
            subprocess.Popen(
                [*command, "crawl", "--city", city],
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            for city in ("Berlin", "Munich")
        ]
        outputs = [crawl.communicate(timeout=300)[0] for crawl in crawls]
        assert [crawl.returncode for crawl in crawls] == [0, 0], outputs
    database = paths(home).database_url
    with session_scope(database) as session:
        runs = session.scalars(select(CrawlRun).order_by(CrawlRun.id)).all()
        assert [run.status for run in runs] == ["finished", "finished"]
        assert sum(run.links_done for run in runs) == len(site.urls)
        per_link = session.execute(
            select(CrawlOutcome.link_id, func.count()).group_by(CrawlOutcome.link_id)
        ).all()
        assert len(per_link) == len(site.urls) and {count for _, count in per_link} == {1}
        indexed = session.scalars(select(WarcFile.name)).all()
    on_disk = sorted(p.name for p in paths(home).warcs.glob("*.warc.gz"))
    assert sorted(indexed) == on_disk and len(set(indexed)) == len(indexed)
    assert not list(paths(home).warcs.glob("*.open"))
