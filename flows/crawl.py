"""The crawl flow: import seeds, plan crawl units, crawl them while indexing, close the run.

A crawl unit is a set of whole hosts (``pipeline.units``) crawled from start to end by one
long-lived Scrapy process (``python -m spiders.run``): a Twisted reactor cannot be
restarted inside a task, per-host politeness then holds across processes, and a crash or
hang costs one unit, which Prefect retries from the links it had not reached. One process
per core crawls (fetching, WARC writing, extraction); meanwhile the flow's own process
indexes each WARC file as soon as a unit closes it (every few seconds), so captures are
searchable while the crawl runs. The flow stays thin; all I/O is in small retried tasks.

With a work pool (``pool``, ``LINKARCHIVE_WORK_POOL``) the same units, planned into the
shared catalog, run on ``linkarchive worker``s on other machines instead
(``flows.fanout`` sends them, ``flows.unit`` is what a worker runs).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.exceptions import MissingContextError
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from archive import recover_open_file, stale_open_files
from archive.space import DISK_FULL_EXIT, disk_full_message, is_disk_full
from pipeline.catalog import session_scope
from pipeline.catalog.importer import import_entries
from pipeline.catalog.models import CrawlRun
from pipeline.catalog.queries import Selection, link_context, select_links
from pipeline.catalog.runs import (
    add_units,
    claim_unit,
    finish_run,
    finish_unit,
    record_unreached,
    reopen,
    start_run,
    unit_links,
    unit_of,
    units_of,
)
from pipeline.config import paths
from pipeline.evidence.ledgerfile import keep_ledger
from pipeline.indexer import index_files
from pipeline.linkcheck.history import archive_checks, by_status, judge_run
from pipeline.progress import PROGRESS_SUFFIX, holding_run, read_progress, run_folder
from pipeline.seedarchive import archive_import
from pipeline.seeds import load_source
from pipeline.storage import configured_storage, move_into_store, push_files
from pipeline.units import host_of, plan_units, shard_key

REPO_ROOT = Path(__file__).resolve().parent.parent
# Crawl processes at a time: one per core by default.
PROCESSES = int(os.environ.get("LINKARCHIVE_CRAWL_PROCESSES", os.cpu_count() or 2))
# Units of a run on a work pool (0: one per worker online, at most 16): each costs a
# process start and a few seconds of scheduling, so a round of units as wide as the
# cluster is fastest; more (set this) balance long crawls and leave work for late joiners.
CLUSTER_UNITS = int(os.environ.get("LINKARCHIVE_CLUSTER_UNITS", 0))
CLUSTER_UNIT_LINKS = 10  # fewer units than that many links each: not worth their start-up
# A unit whose process reports no progress for this long is stuck: it is killed and retried.
STALL_SECONDS = float(os.environ.get("LINKARCHIVE_UNIT_STALL_SECONDS", 600))
INDEX_INTERVAL = 1.0  # seconds between indexing passes while units run

# One indexing pass at a time in this process (the indexer loop and retried units).
_INDEX_LOCK = threading.Lock()
# Runs whose units are all done: tells their indexer loop to make its last pass.
_UNITS_DONE: dict[int, threading.Event] = {}


# Set by the CLI's Ctrl-C handler: running units stop their processes (within about two
# seconds), queued ones do not start, and the run closes as "interrupted" (resumable).
INTERRUPTED = threading.Event()
# Why the crawl stopped by itself (a full disk): its units stop as on Ctrl-C.
STOPPED: dict[str, str] = {"reason": ""}
STOP_GRACE = 2.0  # seconds a stopped crawl process gets to close its WARC file


class UnitFailed(RuntimeError):
    """A crawl process exited without finishing its unit."""


class UnitInterrupted(UnitFailed):
    """The crawl was interrupted (Ctrl-C): the unit stopped, what it wrote is kept."""


def stop_crawl(reason: str) -> None:
    """Stop every unit of this machine's crawl as Ctrl-C does, for ``reason``."""
    STOPPED["reason"] = STOPPED["reason"] or reason
    INTERRUPTED.set()


def _stop_if_disk_full(exc: BaseException, home: str) -> None:
    """Stop the crawl (resumable) if ``exc`` is a write that found no room; else re-raise."""
    if not is_disk_full(exc):
        raise exc
    stop_crawl(disk_full_message(paths(home).warcs))


def _interrupted(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: an interrupted unit is not retried."""
    return not INTERRUPTED.is_set()


@task(retries=2, retry_delay_seconds=2)
def import_seeds(source: str, home: str) -> dict[str, Any]:
    """Import an index page or CSV into the catalog."""
    loaded = load_source(source)
    for problem in loaded.problems:
        get_run_logger().warning("seed import: skipped %s", problem)
    where = paths(home).ensure()
    with session_scope(where.database_url) as session:
        result = import_entries(session, loaded.location, loaded.entries, loaded.body)
    archive_import(where.warcs, loaded, result)
    return result.__dict__


def _write_links(path: Path, links: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for link in links:
            out.write(json.dumps(link, ensure_ascii=False) + "\n")


@task
def open_run(
    selection: dict[str, Any], unit_size: int, home: str, processes: int = PROCESSES
) -> tuple[int, list[int]]:
    """Record a new crawl run and plan its crawl units; returns the run's id and the number
    of links of each unit. The units (their links and host shards) go into the catalog,
    not through Prefect (which would hash and copy every parameter), where a worker on
    any machine sharing the catalog can read them. ``processes`` units run at a time."""
    from prefect.runtime import flow_run

    chosen = {k: v for k, v in selection.items() if k not in ("mode", "cluster")}
    if chosen.get("link_ids") is not None:
        chosen["link_ids"] = tuple(chosen["link_ids"])
    with session_scope(paths(home).database_url) as session:
        links = [link_context(link) for link in select_links(session, Selection(**chosen))]
        run = start_run(session, selection, len(links), flow_run_id=flow_run.id)
        key = host_of
        if selection.get("cluster"):
            # Units that hold their host shards across machines must not share one; each
            # costs a process start and scheduling, so a small crawl gets few.
            key = shard_key
            processes = max(1, min(processes, math.ceil(len(links) / CLUSTER_UNIT_LINKS)))
        units = plan_units(links, processes=processes, unit_size=unit_size, key=key)
        add_units(session, run.id, units)
        run_id = run.id
    run_folder(paths(home).ensure().jobs, run_id).mkdir(parents=True, exist_ok=True)
    return run_id, [len(unit) for unit in units]


@task
def reopen_run(run_id: int, home: str) -> tuple[int, list[int]]:
    """An interrupted run, running again: its id and the number of links of each unit."""
    with session_scope(paths(home).database_url) as session:
        run = reopen(session, run_id)
        return run.id, [len(unit.link_ids) for unit in units_of(session, run.id)]


@task(retries=2, retry_delay_seconds=3)
def cluster_units(pool: str) -> int:
    """How many units a run on ``pool`` gets: one per worker online, 1 to 16."""
    from flows.deployments import workers

    online = sum(1 for worker in workers(pool) if worker["status"] == "ONLINE")
    return max(1, min(16, online))


@task(retries=2, retry_delay_seconds=1)
def index_new_warcs(home: str) -> dict[str, Any]:
    """One indexing pass (see :func:`index_pass`) as a task of its own."""
    return index_pass(home)


def index_pass(home: str, move: bool = False) -> dict[str, Any]:
    """Recover what killed crawl processes left open, then index every new closed WARC
    file and copy it into the WARC store, if one is set. A worker ``move``s them: each
    is stored before it is indexed, then deleted here (:func:`move_into_store`)."""
    where = paths(home)
    with _index_lock(where.warcs):
        for stale in stale_open_files(where.warcs):
            _logger().warning("recovered %s", recover_open_file(stale).describe())
        storage = configured_storage()
        if move and storage is not None:
            moved = move_into_store(where, storage, where.database_url)
            for problem in moved.problems:
                _logger().warning("WARC store: %s (kept here; tried again)", problem)
            return {
                "files": len(moved.stored),
                "store_seconds": moved.store_seconds,
                "index_seconds": moved.index_seconds,
            }
        with session_scope(where.database_url) as session:
            keep_ledger(session, where)
            indexed = index_files(session, where.warcs.glob("*.warc.gz"), where.indexes)
        store_pass(home)
        return indexed.__dict__


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger inside a flow or task; this module's logger elsewhere (a worker
    catching up on its data home before it starts)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


@contextmanager
def _index_lock(warcs: Path) -> Iterator[None]:
    """One indexing pass at a time over a WARC folder: among this process's threads, and
    among processes (two units a worker runs at once share its folder)."""
    with _INDEX_LOCK, (warcs / ".index.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def store_pass(home: str) -> None:
    """Copy newly indexed WARC files into the WARC store (LINKARCHIVE_WARC_STORE), if one
    is set; a store that does not answer is tried again on the next pass."""
    storage = configured_storage()
    if storage is None:
        return
    with session_scope(paths(home).database_url) as session:
        for problem in push_files(session, paths(home), storage).problems:
            _logger().warning("WARC store: %s", problem)


@task(retries=2, retry_delay_seconds=3, retry_condition_fn=_interrupted)
def crawl_unit(
    run_id: int,
    number: int,
    home: str,
    timeout: float | None = None,
    mode: str = "crawl",
    browser: str | None = None,
) -> dict[str, Any]:
    """Crawl one unit of the run on this machine (see :func:`crawl_attempt`).

    A retry first indexes what the failed attempt archived, then crawls only the links
    that got no outcome (so does a resumed run's unit).
    """
    from prefect.runtime import task_run

    if INTERRUPTED.is_set():
        return {"interrupted": f"unit {number} not started: the crawl was interrupted"}
    attempt = task_run.run_count or 1
    if attempt > 1:
        index_pass(home)
    owner = str(task_run.id)
    with session_scope(paths(home).database_url) as session:
        unit = unit_of(session, run_id, number)
        if unit.status == "done":  # a resumed run's finished unit
            return unit.result or {}
        claim_unit(session, unit, owner, socket.gethostname())
        attempt = unit.attempts  # across resumes too: each attempt's files stay apart
        unit_id, links = unit.id, unit_links(session, unit, unreached=True)
    try:
        result = crawl_attempt(run_id, number, attempt, links, home, timeout, mode, browser)
    except UnitInterrupted as exc:  # not a failure: the run closes as interrupted
        _logger().info("%s", exc)
        return {"interrupted": str(exc)}
    except OSError as exc:  # the unit's own files found no room
        _stop_if_disk_full(exc, home)
        return {"interrupted": f"unit {number} not started: {STOPPED['reason']}"}
    with session_scope(paths(home).database_url) as session:
        finish_unit(session, unit_id, owner, "done", result)
    return result


def crawl_attempt(
    run_id: int,
    number: int,
    attempt: int,
    links: list[dict[str, Any]],
    home: str,
    timeout: float | None = None,
    mode: str = "crawl",
    browser: str | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """One attempt at a unit's ``links`` in a Scrapy subprocess writing into ``home``'s
    WARC folder; returns its result or raises :class:`UnitFailed`.

    ``mode`` "check" fetches each link's page alone (archived all the same). ``timeout``
    bounds the attempt; one that reports no progress for ``LINKARCHIVE_UNIT_STALL_SECONDS``
    is killed too, and so is one whose ``stop`` is set. ``browser`` (auto, always, never;
    None: ``LINKARCHIVE_BROWSER``) says which pages are rendered in Chromium.
    """
    where = paths(home).ensure()
    folder = run_folder(where.jobs, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"unit{number:03d}-a{attempt}"
    links_path = stem.with_suffix(".links.jsonl")
    _write_links(links_path, links)
    job = {
        "run_id": run_id,
        "unit": number,
        "attempt": attempt,
        "mode": mode,
        "browser": browser,
        "links_file": str(links_path),
        "links_total": len(links),
        "warc_dir": str(where.warcs),
        "log_file": str(stem.with_suffix(".log")),
        "progress_file": str(stem.with_suffix(PROGRESS_SUFFIX)),
    }
    job_path = stem.with_suffix(".json")
    job_path.write_text(json.dumps(job, indent=2, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "LINKARCHIVE_HOME": str(where.home)}
    env["LINKARCHIVE_PARENT_PID"] = str(os.getpid())  # it stops if this process dies
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with open(job["log_file"], "ab") as log:
        # A session of its own: Ctrl-C at the terminal reaches the CLI only, which stops
        # the unit; and a stop reaches Chromium and every other child of the crawl.
        proc = subprocess.Popen(
            [sys.executable, "-m", "spiders.run", str(job_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        why = _supervise(proc, Path(job["progress_file"]), timeout, stop)
    result_file = job_path.with_suffix(".result.json")
    if not why and proc.returncode == DISK_FULL_EXIT:
        stop_crawl(disk_full_message(where.warcs))
        raise UnitInterrupted(f"unit {number} stopped: {STOPPED['reason']}")
    if INTERRUPTED.is_set() and why:
        raise UnitInterrupted(f"unit {number} {why}")
    if why or proc.returncode != 0 or not result_file.exists():
        why = why or f"exited with status {proc.returncode}"
        raise UnitFailed(f"unit {number} {why}; see {job['log_file']}")
    return json.loads(result_file.read_text(encoding="utf-8"))


def _supervise(
    proc: subprocess.Popen[bytes],
    progress: Path,
    timeout: float | None,
    stop: threading.Event | None = None,
) -> str:
    """Wait for a crawl process; kill it (SIGKILL) past ``timeout``, when it stalls or
    when ``stop`` is set. Returns why it was killed, or "" when it ended by itself."""
    started = last_change = time.monotonic()
    last_seen: bytes | None = None
    while proc.poll() is None:
        time.sleep(0.2)
        now = time.monotonic()
        try:
            seen = progress.read_bytes()
        except OSError:
            seen = None
        # "elapsed" changes in every report: compare what was done, not when.
        if seen is not None:
            figures = json.loads(seen) if seen.strip() else {}
            figures.pop("elapsed", None)
            seen = json.dumps(figures, sort_keys=True).encode()
        if seen != last_seen:
            last_seen, last_change = seen, now
        why = ""
        if timeout is not None and now - started > timeout:
            why = f"timed out after {timeout:.0f} s"
        elif now - last_change > STALL_SECONDS:
            why = f"made no progress for {STALL_SECONDS:.0f} s"
        elif stop is not None and stop.is_set():
            why = "was stopped: another attempt holds the unit now"
        elif INTERRUPTED.is_set():
            _stop_group(proc)  # gracefully first: the open WARC file gets closed
            return "was interrupted"
        if why:
            _stop_group(proc, grace=0)
            return why
    return ""


def _stop_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """Stop a crawl process and everything it started (Chromium): SIGTERM (so its open
    WARC file gets closed), then SIGKILL after ``grace`` seconds; SIGKILL at once for 0."""
    if grace:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@task(retries=2, retry_delay_seconds=1)
def index_during_crawl(run_id: int, home: str) -> dict[str, Any]:
    """Index closed WARC files as units close them, until every unit is done, then once
    more; logs the run's progress as it goes. Returns the totals of every pass."""
    logger = get_run_logger()
    done = _UNITS_DONE.setdefault(run_id, threading.Event())
    totals: dict[str, Any] = {"files": 0, "captures": 0, "outcomes": 0}
    last_report = 0.0
    while True:
        finished = done.wait(INDEX_INTERVAL)
        try:
            result = index_pass(home)
        except Exception as exc:
            _stop_if_disk_full(exc, home)  # the units stop; resumable
            return totals
        for key in totals:
            totals[key] += result[key]
        if time.monotonic() - last_report > 10 or finished:
            last_report = time.monotonic()
            logger.info("run %d: %s", run_id, read_progress(paths(home).jobs, run_id).describe())
        if finished:
            return totals


@task
def close_run(run_id: int, failed_units: list[int], home: str) -> dict[str, Any]:
    """Give failed units' unreached links an error outcome and store the run's totals.
    An interrupted run keeps its unreached links without one: `crawl --resume` crawls them.
    On a full disk the run cannot be closed in the catalog: it stays marked running, its
    liveness lock free once this process ends, and `crawl --resume` finishes it."""
    try:
        return _close_run(run_id, failed_units, home)
    except Exception as exc:
        _stop_if_disk_full(exc, home)
        with session_scope(paths(home).database_url) as session:  # reading needs no room
            run = session.get(CrawlRun, run_id)
            return {**_run_result(run), "status": "interrupted",
                    "reason": STOPPED["reason"]}  # fmt: skip


def _close_run(run_id: int, failed_units: list[int], home: str) -> dict[str, Any]:
    with session_scope(paths(home).database_url) as session:
        if INTERRUPTED.is_set():
            for unit in units_of(session, run_id):
                if unit.status == "running":
                    unit.status = "queued"
            run = finish_run(session, run_id, 0)
            run.status = "interrupted"
            return {**_run_result(run), "reason": STOPPED["reason"]}
        failed_links: list[int] = []
        for unit in units_of(session, run_id):
            if unit.number in failed_units:
                failed_links.extend(unit.link_ids)
                if unit.status != "done":
                    finish_unit(session, unit.id, None, "failed")
            elif unit.status != "done":
                finish_unit(session, unit.id, None, "done")
        if failed_links:
            record_unreached(session, run_id, failed_links, "crawl unit failed")
        return _run_result(finish_run(session, run_id, len(failed_units)))


def _run_result(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "status": run.status,
        "links_total": run.links_total,
        "links_done": run.links_done,
        "links_failed": run.links_failed,
        "captures": run.captures,
        "bytes_archived": run.bytes_archived,
        "bytes_deduplicated": run.bytes_deduplicated,
    }


@flow(name="linkarchive-crawl", task_runner=ThreadPoolTaskRunner(max_workers=PROCESSES + 1))
def crawl_flow(
    source: str | None = None,
    country: str | None = None,
    city: str | None = None,
    kind: str | None = None,
    from_source: str | None = None,
    unit_size: int = 5000,
    unit_timeout: float | None = None,
    home: str | None = None,
    link_ids: list[int] | None = None,
    mode: str = "crawl",
    browser: str | None = None,
    pool: str | None = None,
    resume: int | None = None,
) -> dict[str, Any]:
    """Archive the selected links (all when nothing is selected) and record a crawl run;
    or, with ``resume``, finish that interrupted run: its units' links without an outcome.

    Links are split into crawl units of whole hosts (at most about ``unit_size`` links
    each). Without ``pool`` (or ``LINKARCHIVE_WORK_POOL``), ``PROCESSES`` units are
    crawled at a time on this machine, and their WARC files indexed as they close them;
    with it, the units go to the pool's workers (``flows.fanout``), which index and store
    their own files into the shared catalog and WARC store.
    """
    if STOPPED["reason"]:  # a previous crawl in this process stopped itself
        STOPPED["reason"] = ""
        INTERRUPTED.clear()
    pool = pool or os.environ.get("LINKARCHIVE_WORK_POOL") or None
    home = str(paths(home).ensure().home)
    if source:
        import_seeds(source, home)
    selection = Selection(
        country=country,
        city=city,
        kind=kind,
        source=from_source,
        link_ids=tuple(link_ids) if link_ids is not None else None,
    )
    if pool:
        from flows.fanout import run_units_on_pool

        run_id, _ = open_run(
            {**selection.as_dict(), "mode": mode, "cluster": pool},
            unit_size,
            home,
            CLUSTER_UNITS or cluster_units(pool),
        )
        failed = run_units_on_pool(run_id, pool, home, mode, browser, unit_timeout)
        index_new_warcs(home)  # this machine's own files (the seed import's), into the store
        return close_run(run_id, failed, home)
    if resume is not None:
        run_id, units = reopen_run(resume, home)
    else:
        run_id, units = open_run({**selection.as_dict(), "mode": mode}, unit_size, home)
    with holding_run(paths(home).jobs, run_id):  # a killed flow leaves the run resumable
        return _crawl_units(run_id, len(units), home, unit_timeout, mode, browser)


def _crawl_units(
    run_id: int, units: int, home: str, unit_timeout: float | None, mode: str, browser: str | None
) -> dict[str, Any]:
    """Crawl a run's units on this machine while indexing what they write; close the run."""
    done = _UNITS_DONE[run_id] = threading.Event()
    indexer = index_during_crawl.submit(run_id, home)
    futures = {
        crawl_unit.submit(run_id, number, home, unit_timeout, mode, browser): number
        for number in range(1, units + 1)
    }
    failed_units: list[int] = []
    try:
        for future in as_completed(list(futures)):
            if isinstance(future.result(raise_on_failure=False), BaseException):
                failed_units.append(futures[future])
    finally:
        done.set()
        indexed = indexer.result(raise_on_failure=False)
        _UNITS_DONE.pop(run_id, None)
    if isinstance(indexed, BaseException):  # its retries spent: one more pass, on its own
        try:
            index_new_warcs(home)
        except Exception as exc:
            _stop_if_disk_full(exc, home)
    return close_run(run_id, sorted(failed_units), home)


@task
def classify_checks(run_id: int, home: str) -> dict[str, list[int]]:
    """Judge each checked link against its last good capture, archive the judgements in a
    WARC file and index it (which sets the links' standing); returns link ids by status."""
    where = paths(home)
    with session_scope(where.database_url) as session:
        judged = judge_run(session, run_id, where)
    archive_checks(where.warcs, run_id, judged)
    index_pass(home)
    return by_status(judged)


@flow(name="linkarchive-check")
def check_flow(
    country: str | None = None,
    city: str | None = None,
    kind: str | None = None,
    link_ids: list[int] | None = None,
    home: str | None = None,
    recapture: bool = True,
    pool: str | None = None,
) -> dict[str, Any]:
    """Visit the selected links' live URLs, archive what they answer, classify each, and
    capture again in full the pages that changed (unchanged payloads become revisits)."""
    home = str(paths(home).ensure().home)
    checked = crawl_flow(
        country=country, city=city, kind=kind, link_ids=link_ids, home=home, mode="check", pool=pool
    )
    statuses = classify_checks(checked["run_id"], home)
    result: dict[str, Any] = {"run_id": checked["run_id"], "statuses": statuses}
    if recapture and statuses.get("changed"):
        result["recapture"] = crawl_flow(link_ids=statuses["changed"], home=home, pool=pool)
    return result
