"""Crawls spread over workers: real PostgreSQL, a real Prefect server on it, a real S3
store and two `linkarchive worker` processes with data homes of their own, crawling a
latency-bound site of four hosts (127.0.0.2-5) into one catalog and one store."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import replay_server
from sqlalchemy import func, select

from bench.cluster import Cluster, kill_tree
from bench.site import Site
from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, CrawlOutcome, CrawlRun, CrawlUnit, Link, WarcFile
from pipeline.replay import find_wayback

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(900)]

HOSTS, PAGES = 4, 32


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    peaks = tmp_path_factory.mktemp("site") / "peaks.json"
    with Site(hosts=HOSTS, pages=PAGES, latency_ms=150, peaks=peaks) as served:
        yield served


@pytest.fixture(scope="module")
def cluster(site: Site) -> Iterator[Cluster]:
    """The cluster, its catalog seeded with the site's pages, and two workers, w1 and w2.
    One request at a time per host per crawl process: two processes on one host at once
    would show in the site's peaks."""
    import glob

    if not glob.glob("/usr/lib/postgresql/*/bin"):
        pytest.skip("PostgreSQL is not installed (`.ci/run` installs it)")
    with Cluster(site.addresses) as running:
        running.env["LINKARCHIVE_CONCURRENT_REQUESTS_PER_HOST"] = "1"
        running.env["LINKARCHIVE_UNIT_DEAD_SECONDS"] = "10"
        running.env["LINKARCHIVE_UNIT_HEARTBEAT_SECONDS"] = "1"
        seeds = running.root / "seeds.csv"
        seeds.write_text(
            "country,city,kind,label,url\n"
            + "".join(
                f"Germany,Berlin,report,Report {i},{url}\n" for i, url in enumerate(site.urls)
            )
        )
        imported = running.linkarchive("seeds", "import", str(seeds))
        assert imported.returncode == 0, imported.stderr
        running.worker("w1")
        running.worker("w2")
        running.wait_for_workers({"w1", "w2"})
        yield running


def _catalog(cluster: Cluster) -> str:
    return cluster.env["LINKARCHIVE_DATABASE_URL"]


def _finished(proc: subprocess.Popen[str], timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _captured_once(session: Any, run_id: int) -> None:
    """Every link of the site got one outcome in ``run_id``, and its page one capture (a
    response, or a revisit of a payload an earlier run stored)."""
    links = {link.id: link.url for link in session.scalars(select(Link))}
    outcomes = session.execute(
        select(CrawlOutcome.link_id, func.count()).where(CrawlOutcome.run_id == run_id)
        .group_by(CrawlOutcome.link_id)
    ).all()  # fmt: skip
    assert dict(outcomes) == dict.fromkeys(links, 1)
    pages = session.execute(
        select(Capture.url, func.count())
        .where(Capture.run_id == run_id, Capture.url.in_(list(links.values())),
               Capture.record_type.in_(("response", "revisit")))
        .group_by(Capture.url)
    ).all()  # fmt: skip
    assert dict(pages) == dict.fromkeys(links.values(), 1)


def test_two_workers_share_runs_and_no_host_is_crawled_by_two_at_once(
    cluster: Cluster, site: Site, tmp_path: Path
) -> None:
    """Two crawls of the same links at once: their units go to both workers, every link
    is captured once per run, the store holds every WARC file (valid), nothing is left
    on the workers' disks, and no host ever had two requests in flight."""
    first, second = cluster.popen("crawl"), cluster.popen("crawl")
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        listed = cluster.linkarchive("workers", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        seen = json.loads(listed.stdout)
        if any(unit["status"] == "running" for unit in seen["units"]):
            break
        time.sleep(1)
    assert {w["name"] for w in seen["workers"]} == {"w1", "w2"}
    assert {u["worker"] for u in seen["units"] if u["status"] == "running"} <= {"w1", "w2"}
    assert any(u["status"] == "running" for u in seen["units"]), seen
    _finished(first), _finished(second)

    with session_scope(_catalog(cluster)) as session:
        runs = list(session.scalars(select(CrawlRun).order_by(CrawlRun.id)))
        assert [run.status for run in runs] == ["finished", "finished"]
        for run in runs:
            units = list(session.scalars(select(CrawlUnit).where(CrawlUnit.run_id == run.id)))
            assert all(unit.status == "done" for unit in units)
            planned = [link_id for unit in units for link_id in unit.link_ids]
            assert sorted(planned) == sorted(set(planned)) and len(planned) == PAGES  # disjoint
            _captured_once(session, run.id)
        workers = set(session.scalars(select(CrawlUnit.worker)))
        assert workers == {"w1", "w2"}
        # Deduplication through the shared catalog: the run whose unit came second for a
        # host stored its unchanged pages as revisits, each of an original committed there.
        revisits = session.scalars(select(Capture).where(Capture.record_type == "revisit")).all()
        assert revisits
        for revisit in revisits:
            original = session.scalars(
                select(Capture).where(Capture.record_id == revisit.refers_to)
            ).one()
            assert original.record_type == "response"
            assert original.payload_sha256 == revisit.payload_sha256
            assert original.run_id != revisit.run_id or original.captured_at <= revisit.captured_at
        files = list(session.scalars(select(WarcFile)))
        assert files and all(f.store_uri and f.sha256 for f in files)

    peaks = json.loads(site.peaks.read_text())  # type: ignore[union-attr]
    assert set(peaks) == set(site.addresses)
    assert max(peaks.values()) == 1, peaks

    for worker in ("w1", "w2"):  # moved into the store: nothing left behind
        assert not list((cluster.home(worker) / "warcs").glob("*.warc.gz"))
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    _fetch_store(cluster, fetched)
    names = sorted(p.name for p in fetched.glob("*.warc.gz"))
    assert names == sorted(f.name for f in files)
    check = subprocess.run(
        [
            str(Path(sys.executable).with_name("warcio")),
            "check",
            *map(str, fetched.glob("*.warc.gz")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _fetch_store(cluster: Cluster, target: Path) -> None:
    from bench.seaweed import s3_client

    client = s3_client(cluster.env["LINKARCHIVE_S3_ENDPOINT"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="warcs", Prefix="cluster/")
    for page in pages:
        for item in page.get("Contents", []):
            client.download_file("warcs", item["Key"], str(target / item["Key"].split("/")[-1]))


def test_readers_take_records_from_the_store(
    cluster: Cluster, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archivist's machine has the catalog and the store, no WARC file: search, get,
    evidence export (verified), the web app's archived view and pywb's replay all work."""
    from webkit import client_as, make_app

    if not _runs(cluster):
        _finished(cluster.popen("crawl"))
    with session_scope(_catalog(cluster)) as session:
        link = session.scalars(select(Link).order_by(Link.id)).first()
        assert link is not None and link.last_capture_id
        capture_id, link_id = link.last_capture_id, link.id
    for local in cluster.home("archivist").rglob("*.warc.gz"):  # a machine without them
        local.rename(local.with_name(local.name + ".elsewhere"))

    found = cluster.linkarchive("search", "Berlin", "--format", "json")
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)) > 0
    page = tmp_path / "page.html"
    got = cluster.linkarchive("get", "--capture", str(capture_id), "-o", str(page))
    assert got.returncode == 0, got.stderr
    assert b"Report" in page.read_bytes() or b"<html" in page.read_bytes()
    package = tmp_path / "evidence.wacz"
    exported = cluster.linkarchive(
        "evidence", "export", str(link_id), "--reason", "test", "-o", str(package)
    )
    assert exported.returncode == 0, exported.stderr
    verified = cluster.linkarchive("evidence", "verify", str(package))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    for name in ("LINKARCHIVE_DATABASE_URL", "LINKARCHIVE_WARC_STORE", "LINKARCHIVE_S3_ENDPOINT",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):  # fmt: skip
        monkeypatch.setenv(name, cluster.env[name])
    app = make_app(cluster.home("archivist"))
    shown = client_as(app, "researcher").get(f"/archived/{capture_id}/")
    assert shown.status_code == 200 and shown.headers["x-archived-status"] == "200"
    for name in ("PREFECT_API_URL", "LINKARCHIVE_WORK_POOL"):
        monkeypatch.setenv(name, cluster.env[name])
    manage = client_as(app, "archivist").get("/manage")
    assert manage.status_code == 200
    assert '<tr class="worker"><td>w1</td>' in manage.text
    assert '<tr class="worker"><td>w2</td>' in manage.text

    if find_wayback() is None:
        pytest.skip("pywb is not installed (`make test` installs it)")
    with replay_server(cluster.home("archivist")) as (port, urls):  # pywb, from verified copies
        assert len(urls) == PAGES
        page_alone = re.sub(r"/linkarchive/(\d+)/", r"/linkarchive/\1mp_/", urls[0], count=1)
        with urllib.request.urlopen(page_alone, timeout=30) as replayed:
            assert replayed.status == 200 and b"<p>" in replayed.read()


def _runs(cluster: Cluster) -> int:
    with session_scope(_catalog(cluster)) as session:
        return session.scalar(select(func.count(CrawlRun.id))) or 0


def _counts(cluster: Cluster) -> tuple[int, int, int]:
    with session_scope(_catalog(cluster)) as session:
        return (
            session.scalar(select(func.count(Capture.id))) or 0,
            session.scalar(select(func.count(CrawlOutcome.id))) or 0,
            session.scalar(select(func.count(WarcFile.id))) or 0,
        )


def test_the_same_unit_run_twice_commits_once(cluster: Cluster) -> None:
    """A unit submitted again after it finished, and again as if its first attempt had
    never been marked done, adds nothing to the catalog."""
    if not _runs(cluster):
        _finished(cluster.popen("crawl"))
    before = _counts(cluster)
    with session_scope(_catalog(cluster)) as session:
        unit = session.scalars(select(CrawlUnit).order_by(CrawlUnit.id)).first()
        assert unit is not None and unit.status == "done"
        run_id, number, attempts = unit.run_id, unit.number, unit.attempts
    script = (
        "import sys; from prefect.deployments import run_deployment; "
        "r = run_deployment('linkarchive-unit/linkarchive', timeout=300, "
        f"parameters={{'run_id': {run_id}, 'number': {number}}}); "
        "print(r.state.type.value); sys.exit(0 if r.state.is_completed() else 1)"
    )
    again = subprocess.run([sys.executable, "-c", script], env=cluster.env, capture_output=True,
                           text=True, timeout=600, check=False)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert _counts(cluster) == before
    with session_scope(_catalog(cluster)) as session:
        unit = session.get_one(CrawlUnit, unit.id)
        assert unit.attempts == attempts  # done: not even claimed
        unit.status = "queued"
    again = subprocess.run([sys.executable, "-c", script], env=cluster.env, capture_output=True,
                           text=True, timeout=600, check=False)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert _counts(cluster) == before
    with session_scope(_catalog(cluster)) as session:
        unit = session.get_one(CrawlUnit, unit.id)
        assert unit.attempts == attempts + 1 and unit.status == "done"


def test_a_killed_worker_s_unit_is_finished_by_the_other(cluster: Cluster) -> None:
    """SIGKILL a worker and everything it started in the middle of a unit: the crawl flow
    sees its heartbeat stop, marks the flow run Crashed and submits the unit again; the
    other worker finishes it once the dead one's hold on the hosts has expired. Every
    link gets exactly one outcome and its page one capture; the run finishes whole."""
    crawl = cluster.popen("crawl")
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.5)
        with session_scope(_catalog(cluster)) as session:
            run_id = session.scalar(select(func.max(CrawlRun.id)))
            for unit in session.scalars(select(CrawlUnit).where(CrawlUnit.run_id == run_id)):
                reached = session.scalar(
                    select(func.count(CrawlOutcome.id)).where(
                        CrawlOutcome.run_id == run_id, CrawlOutcome.link_id.in_(unit.link_ids)
                    )
                )
                # Claimed and crawling, not all indexed yet: a unit of this site takes its
                # worker a few seconds, and its outcomes arrive as its files are moved, so
                # "some indexed" is too narrow a window to wait for.
                if unit.status == "running" and (reached or 0) < len(unit.link_ids):
                    victim = (unit.id, unit.worker)
                    break
    assert victim is not None, "no unit was seen running"
    unit_id, dead = victim
    cluster.kill_worker(dead)
    try:
        out = _finished(crawl)
    finally:
        if dead not in cluster.workers:
            cluster.worker(dead)  # back for the tests after this one
    assert "finished" in out
    with session_scope(_catalog(cluster)) as session:
        unit = session.get_one(CrawlUnit, unit_id)
        assert unit.status == "done" and unit.attempts >= 2 and unit.worker != dead
        run = session.get_one(CrawlRun, unit.run_id)
        assert run.status == "finished" and run.links_failed == 0
        _captured_once(session, run.id)


def test_a_unit_prefect_marks_crashed_is_submitted_again(cluster: Cluster) -> None:
    """Kill only a unit's flow-run process (and its crawl process), not its worker: the
    worker reports the flow run Crashed, which Prefect never retries by itself; the crawl
    flow submits the unit again and the run finishes whole."""
    from bench.cluster import descendants, parent_of

    crawl = cluster.popen("crawl")
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline:
        time.sleep(0.3)
        with session_scope(_catalog(cluster)) as session:
            run_id = session.scalar(select(func.max(CrawlRun.id)))
            running = session.scalars(
                select(CrawlUnit).where(CrawlUnit.run_id == run_id, CrawlUnit.status == "running")
            ).first()
            if running is None or running.worker not in cluster.workers:
                continue
            unit_id, worker = running.id, running.worker
        flow_runs = [
            pid for pid in descendants(cluster.workers[worker].pid)
            if b"spiders.run" in _cmdline(pid)
        ]  # fmt: skip
        if flow_runs:  # the crawl process's parent is the flow run's process
            kill_tree(parent_of(flow_runs[0]))
            killed = (unit_id, worker)
    assert killed is not None, "no unit was seen crawling"
    assert "finished" in _finished(crawl)
    assert all(proc.poll() is None for proc in cluster.workers.values())  # workers unharmed
    with session_scope(_catalog(cluster)) as session:
        unit = session.get_one(CrawlUnit, killed[0])
        assert unit.status == "done" and unit.attempts >= 2
        run = session.get_one(CrawlRun, unit.run_id)
        assert run.status == "finished" and run.links_failed == 0
        _captured_once(session, run.id)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return b""
