"""The crawl flow: import seeds, plan crawl units, crawl them while indexing, close the run.

A crawl unit is a set of whole hosts (``pipeline.units``) crawled from start to end by one
long-lived Scrapy process (``python -m spiders.run``): a Twisted reactor cannot be
restarted inside a task, per-host politeness then holds across processes, and a crash or
hang costs one unit, which Prefect retries from the links it had not reached. One process
per core crawls (fetching, WARC writing, extraction); meanwhile the flow's own process
indexes each WARC file as soon as a unit closes it (every few seconds), so captures are
searchable while the crawl runs. The flow stays thin; all I/O is in small retried tasks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from archive import recover_open_file, stale_open_files
from pipeline.catalog import session_scope
from pipeline.catalog.importer import import_entries
from pipeline.catalog.queries import Selection, link_context, select_links
from pipeline.catalog.runs import finish_run, reached_links, record_unreached, start_run
from pipeline.checks import classify_run
from pipeline.config import paths
from pipeline.indexer import index_files
from pipeline.progress import PROGRESS_SUFFIX, read_progress, run_folder
from pipeline.seedarchive import archive_import
from pipeline.seeds import load_source
from pipeline.storage import configured_storage, push_files
from pipeline.units import plan_units

REPO_ROOT = Path(__file__).resolve().parent.parent
# Crawl processes at a time: one per core by default.
PROCESSES = int(os.environ.get("LINKARCHIVE_CRAWL_PROCESSES", os.cpu_count() or 2))
# A unit whose process reports no progress for this long is stuck: it is killed and retried.
STALL_SECONDS = float(os.environ.get("LINKARCHIVE_UNIT_STALL_SECONDS", 600))
INDEX_INTERVAL = 1.0  # seconds between indexing passes while units run

# One indexing pass at a time in this process (the indexer loop and retried units).
_INDEX_LOCK = threading.Lock()
# Runs whose units are all done: tells their indexer loop to make its last pass.
_UNITS_DONE: dict[int, threading.Event] = {}


class UnitFailed(RuntimeError):
    """A crawl process exited without finishing its unit."""


@task(retries=2, retry_delay_seconds=2)
def import_seeds(source: str, home: str) -> dict[str, Any]:
    """Import an index page or CSV into the catalog."""
    loaded = load_source(source)
    where = paths(home).ensure()
    with session_scope(where.database_url) as session:
        result = import_entries(session, loaded.location, loaded.entries, loaded.body)
    archive_import(where.warcs, loaded, result)
    return result.__dict__


def _unit_links(home: str, run_id: int, number: int) -> Path:
    """The links of a crawl unit, as planned (JSON Lines)."""
    return run_folder(paths(home).jobs, run_id) / f"unit{number:03d}.links.jsonl"


def _read_links(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _write_links(path: Path, links: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for link in links:
            out.write(json.dumps(link, ensure_ascii=False) + "\n")


@task
def open_run(selection: dict[str, Any], unit_size: int, home: str) -> tuple[int, list[int]]:
    """Record a new crawl run and plan its crawl units; returns the run's id and the number
    of links of each unit. The links themselves go to the units' files, not through
    Prefect (which would hash and copy every parameter: memory growing with the crawl)."""
    from prefect.runtime import flow_run

    chosen = {k: v for k, v in selection.items() if k != "mode"}
    if chosen.get("link_ids") is not None:
        chosen["link_ids"] = tuple(chosen["link_ids"])
    with session_scope(paths(home).database_url) as session:
        links = [link_context(link) for link in select_links(session, Selection(**chosen))]
        run = start_run(session, selection, len(links), flow_run_id=flow_run.id)
        run_id = run.id
    run_folder(paths(home).ensure().jobs, run_id).mkdir(parents=True, exist_ok=True)
    units = plan_units(links, processes=PROCESSES, unit_size=unit_size)
    for number, unit in enumerate(units, start=1):
        _write_links(_unit_links(home, run_id, number), unit)
    return run_id, [len(unit) for unit in units]


@task(retries=2, retry_delay_seconds=1)
def index_new_warcs(home: str) -> dict[str, Any]:
    """One indexing pass (see :func:`index_pass`) as a task of its own."""
    return index_pass(home)


def index_pass(home: str) -> dict[str, Any]:
    """Recover what killed crawl processes left open, then index every new closed WARC file."""
    where = paths(home)
    with _INDEX_LOCK:
        for stale in stale_open_files(where.warcs):
            get_run_logger().warning("recovered %s", recover_open_file(stale).describe())
        with session_scope(where.database_url) as session:
            indexed = index_files(session, where.warcs.glob("*.warc.gz"), where.indexes)
        store_pass(home)
        return indexed.__dict__


def store_pass(home: str) -> None:
    """Copy newly indexed WARC files into the WARC store (LINKARCHIVE_WARC_STORE), if one
    is set; a store that does not answer is tried again on the next pass."""
    storage = configured_storage()
    if storage is None:
        return
    with session_scope(paths(home).database_url) as session:
        for problem in push_files(session, paths(home), storage).problems:
            get_run_logger().warning("WARC store: %s", problem)


@task(retries=2, retry_delay_seconds=3)
def crawl_unit(
    run_id: int,
    number: int,
    home: str,
    timeout: float | None = None,
    mode: str = "crawl",
    browser: str | None = None,
) -> dict[str, Any]:
    """Crawl one unit (its planned links file) in a Scrapy subprocess; returns its result.

    A retry first indexes what the failed attempt archived, then crawls only the links
    that got no outcome. ``mode`` "check" fetches each link's page alone (archived all
    the same). ``timeout`` bounds the whole attempt; an attempt that reports no progress
    for ``LINKARCHIVE_UNIT_STALL_SECONDS`` is killed too. ``browser`` (auto, always,
    never; None: ``LINKARCHIVE_BROWSER``) says which pages are rendered in Chromium.
    """
    from prefect.runtime import task_run

    where = paths(home).ensure()
    attempt = task_run.run_count or 1
    links = _read_links(_unit_links(home, run_id, number))
    if attempt > 1:
        index_pass(home)
        with session_scope(where.database_url) as session:
            reached = reached_links(session, run_id)
        links = [link for link in links if link["link_id"] not in reached]
    stem = run_folder(where.jobs, run_id) / f"unit{number:03d}-a{attempt}"
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
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with open(job["log_file"], "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spiders.run", str(job_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        why = _supervise(proc, Path(job["progress_file"]), timeout)
    result_file = job_path.with_suffix(".result.json")
    if why or proc.returncode != 0 or not result_file.exists():
        why = why or f"exited with status {proc.returncode}"
        raise UnitFailed(f"unit {number} {why}; see {job['log_file']}")
    return json.loads(result_file.read_text(encoding="utf-8"))


def _supervise(proc: subprocess.Popen[bytes], progress: Path, timeout: float | None) -> str:
    """Wait for a crawl process; kill it (SIGKILL) past ``timeout`` or when it stalls.
    Returns why it was killed, or "" when it ended by itself."""
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
        if why:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return why
    return ""


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
        result = index_pass(home)
        for key in totals:
            totals[key] += result[key]
        if time.monotonic() - last_report > 10 or finished:
            last_report = time.monotonic()
            logger.info("run %d: %s", run_id, read_progress(paths(home).jobs, run_id).describe())
        if finished:
            return totals


@task
def close_run(run_id: int, failed_units: list[int], home: str) -> dict[str, Any]:
    """Give failed units' unreached links an error outcome and store the run's totals."""
    failed_links = [
        link["link_id"]
        for number in failed_units
        for link in _read_links(_unit_links(home, run_id, number))
    ]
    with session_scope(paths(home).database_url) as session:
        if failed_links:
            record_unreached(session, run_id, failed_links, "crawl unit failed")
        run = finish_run(session, run_id, len(failed_units))
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
) -> dict[str, Any]:
    """Archive the selected links (all when nothing is selected) and record a crawl run.

    Links are split into crawl units of whole hosts, ``PROCESSES`` crawled at a time (at
    most about ``unit_size`` links each); WARC files are indexed as the units close them.
    """
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
    run_id, units = open_run({**selection.as_dict(), "mode": mode}, unit_size, home)
    done = _UNITS_DONE[run_id] = threading.Event()
    indexer = index_during_crawl.submit(run_id, home)
    futures = {
        crawl_unit.submit(run_id, number, home, unit_timeout, mode, browser): number
        for number in range(1, len(units) + 1)
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
        index_new_warcs(home)
    return close_run(run_id, sorted(failed_units), home)


@task
def classify_checks(run_id: int, home: str) -> dict[str, list[int]]:
    """Judge each checked link against its last good capture; returns link ids by status."""
    where = paths(home)
    with session_scope(where.database_url) as session:
        return classify_run(session, run_id, where.warcs)


@flow(name="linkarchive-check")
def check_flow(
    country: str | None = None,
    city: str | None = None,
    kind: str | None = None,
    link_ids: list[int] | None = None,
    home: str | None = None,
    recapture: bool = True,
) -> dict[str, Any]:
    """Visit the selected links' live URLs, archive what they answer, classify each, and
    capture again in full the pages that changed (unchanged payloads become revisits)."""
    home = str(paths(home).ensure().home)
    checked = crawl_flow(
        country=country, city=city, kind=kind, link_ids=link_ids, home=home, mode="check"
    )
    statuses = classify_checks(checked["run_id"], home)
    result: dict[str, Any] = {"run_id": checked["run_id"], "statuses": statuses}
    if recapture and statuses.get("changed"):
        result["recapture"] = crawl_flow(link_ids=statuses["changed"], home=home)
    return result
