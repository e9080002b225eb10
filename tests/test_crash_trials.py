"""Twenty seeded ``kill -9`` trials at random moments of real crawling.

Each trial starts `linkarchive crawl` (or `crawl --resume` of the run the last trial left)
on one data home against a slow synthetic site, waits a seeded random time once crawling
is under way, and SIGKILLs in turn a crawl process, Chromium (in a crawl rendering every
page), or the flow itself (the CLI process). A killed crawl process or browser is the
flow's to survive: the trial then stops the crawl as Ctrl-C does. A killed flow takes
nothing with it: its crawl processes must stop by themselves, and the next `--resume`
finishes its run.

After each trial: every closed WARC file reads whole, `warc recover` closes what was left
open, and every capture in the catalog points at a whole record with its own id. At the
end the run is finished with every link archived, and every file passes `warcio check`.
(Workers killed mid-unit are in tests/test_distributed.py.)
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from archive import iter_records, read_record
from archive.recover import process_alive
from bench.cluster import descendants
from bench.site import Site
from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, CrawlOutcome, CrawlRun, Link, WarcFile
from pipeline.config import paths

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

LINKARCHIVE = str(Path(sys.executable).with_name("linkarchive"))
SEED = 20261205
TRIALS = 20
VICTIMS = ("crawl", "flow", "browser")
CHROMIUM = Path("/usr/bin/chromium")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _victims(cli: int, victim: str) -> list[int]:
    """The processes of ``victim``'s kind under the CLI process ``cli``."""
    under = descendants(cli)
    if victim == "crawl":
        return [pid for pid in under if "spiders.run" in _cmdline(pid)]
    if victim == "browser":  # Chromium's main process (its children have --type=...)
        return [pid for pid in under
                if "chromium" in _cmdline(pid) and "--type=" not in _cmdline(pid)]  # fmt: skip
    return [cli] if [pid for pid in under if "spiders.run" in _cmdline(pid)] else []


def _latest_run(home: Path) -> CrawlRun | None:
    with session_scope(paths(home).database_url) as session:
        run = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
        if run is not None:
            session.expunge(run)
        return run


def _check_invariants(home: Path, env: dict[str, str]) -> int:
    """Closed files whole; open ones recovered; every capture's record whole and its own.
    Returns the number of captures checked."""
    where = paths(home)
    for path in where.warcs.glob("*.warc.gz"):
        list(iter_records(path))  # raises at a torn or unreadable record
    recovered = subprocess.run([LINKARCHIVE, "--home", str(home), "warc", "recover"], env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "Traceback" not in recovered.stderr
    assert not list(where.warcs.glob("*.open"))
    with session_scope(where.database_url) as session:
        files = {f.name: Path(f.path) for f in session.scalars(select(WarcFile))}
        rows = session.execute(select(Capture.warc_file, Capture.warc_offset, Capture.record_id))
        checked = 0
        for name, offset, record_id in rows:
            record = read_record(files[name], offset)  # raises if missing or partial
            assert record.record_id == record_id, (name, offset)
            checked += 1
    return checked


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing")
def test_twenty_seeded_kill_9_trials_lose_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    home = tmp_path / "home"
    with Site(hosts=3, pages=150, latency_ms=150) as site:
        env = {**os.environ, "LINKARCHIVE_ALLOWED_HOSTS": ",".join(site.addresses),
               "LINKARCHIVE_CONCURRENT_REQUESTS_PER_HOST": "1"}  # fmt: skip
        seeds = tmp_path / "seeds.csv"
        seeds.write_text("country,city,kind,label,url\n" + "".join(
            f"Germany,Berlin,report,R{i},{url}\n" for i, url in enumerate(site.urls)))  # fmt: skip
        subprocess.run([LINKARCHIVE, "--home", str(home), "seeds", "import", str(seeds)],
                       env=env, check=True, capture_output=True)  # fmt: skip
        killed: dict[str, int] = dict.fromkeys(VICTIMS, 0)
        for trial in range(TRIALS):
            victim = VICTIMS[trial % len(VICTIMS)]
            run = _latest_run(home)
            args = ["crawl"]
            if run is not None and run.status in ("interrupted", "running"):
                args.append("--resume")
            if victim == "browser":
                args += ["--browser", "always"]
            log = (tmp_path / f"trial{trial:02d}.log").open("w")
            deadline = time.monotonic() + 180
            cli = subprocess.Popen([LINKARCHIVE, "--home", str(home), *args], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
            while not (targets := _victims(cli.pid, victim)):
                assert time.monotonic() < deadline, f"trial {trial}: no {victim} to kill"
                if cli.poll() is not None:  # the run finished first: a fresh crawl then
                    assert cli.returncode == 0, (tmp_path / f"trial{trial:02d}.log").read_text()
                    args = [a for a in args if a != "--resume"]
                    cli = subprocess.Popen([LINKARCHIVE, "--home", str(home), *args], env=env,
                                           stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
                time.sleep(0.1)
            time.sleep(rng.uniform(0.3, 4.0))
            crawlers = [pid for pid in descendants(cli.pid) if "spiders.run" in _cmdline(pid)]
            for pid in _victims(cli.pid, victim) or targets:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed[victim] += 1
            if victim == "flow":
                cli.wait(30)
                stopped_by = time.monotonic() + 30
                while any(process_alive(pid) for pid in crawlers):  # they stop by themselves
                    assert time.monotonic() < stopped_by, (
                        f"trial {trial}: crawlers outlived the flow"
                    )
                    time.sleep(0.2)
            else:
                time.sleep(rng.uniform(0.5, 3.0))  # the flow copes meanwhile
                if cli.poll() is None:
                    cli.send_signal(signal.SIGINT)
                assert cli.wait(180) in (0, 130), (tmp_path / f"trial{trial:02d}.log").read_text()
            log.close()
            _check_invariants(home, env)
        assert all(killed.values()), killed
        final = subprocess.run([LINKARCHIVE, "--home", str(home), "crawl", "--resume"], env=env,
                               capture_output=True, text=True, timeout=600)  # fmt: skip
        assert final.returncode in (0, 1), final.stdout + final.stderr
    assert _check_invariants(home, env) > 0
    with session_scope(paths(home).database_url) as session:
        last = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
        assert last is not None and last.status == "finished"
        links = session.scalar(select(func.count(Link.id)))
        outcomes = session.scalar(
            select(func.count(CrawlOutcome.id)).where(CrawlOutcome.run_id == last.id)
        )  # fmt: skip
        assert outcomes == links == len(site.urls)
    for path in paths(home).warcs.glob("*.warc.gz"):
        check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", str(path)],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
        assert check.returncode == 0, check.stdout[-2000:]
