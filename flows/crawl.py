"""The crawl flow: import seeds, select links, crawl them in batches, index, close the run.

Each batch is one Scrapy subprocess (``python -m spiders.run``): a Twisted reactor cannot
be restarted inside a task, and a crash or hang then costs one batch, which Prefect
retries. The flow itself stays thin; all I/O is in small retried tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from archive import recover_open_file, stale_open_files
from pipeline.batching import shard_by_host
from pipeline.catalog import session_scope
from pipeline.catalog.importer import import_entries
from pipeline.catalog.queries import Selection, link_context, select_links
from pipeline.catalog.runs import finish_run, record_unreached, start_run
from pipeline.checks import classify_run
from pipeline.config import paths
from pipeline.indexer import index_files
from pipeline.seedarchive import archive_import
from pipeline.seeds import load_source

REPO_ROOT = Path(__file__).resolve().parent.parent
# Crawl processes at a time: one per core by default.
PARALLEL_BATCHES = int(os.environ.get("LINKARCHIVE_PARALLEL_BATCHES", os.cpu_count() or 2))


class BatchFailed(RuntimeError):
    """A crawl subprocess exited without finishing its batch."""


@task(retries=2, retry_delay_seconds=2)
def import_seeds(source: str, home: str) -> dict[str, Any]:
    """Import an index page or CSV into the catalog."""
    loaded = load_source(source)
    where = paths(home).ensure()
    with session_scope(where.database_url) as session:
        result = import_entries(session, loaded.location, loaded.entries, loaded.body)
    archive_import(where.warcs, loaded, result)
    return result.__dict__


@task
def open_run(selection: dict[str, Any], batch_size: int, home: str) -> tuple[int, list[list[dict]]]:
    """Record a new crawl run; returns its id and the selected links in host-sharded batches."""
    from prefect.runtime import flow_run

    chosen = {k: v for k, v in selection.items() if k != "mode"}
    if chosen.get("link_ids") is not None:
        chosen["link_ids"] = tuple(chosen["link_ids"])
    with session_scope(paths(home).database_url) as session:
        links = [link_context(link) for link in select_links(session, Selection(**chosen))]
        run = start_run(session, selection, len(links), flow_run_id=flow_run.id)
        run_id = run.id
    return run_id, shard_by_host(links, max_batch=batch_size, workers=PARALLEL_BATCHES)


@task(retries=2, retry_delay_seconds=3)
def crawl_batch(
    run_id: int, number: int, links: list[dict], home: str, timeout: float, mode: str = "crawl"
) -> list[str]:
    """Crawl one batch in a Scrapy subprocess; returns the WARC files it closed.

    ``mode`` "check" fetches each link's page alone (archived all the same)."""
    where = paths(home).ensure()
    job_path = where.jobs / f"run{run_id:05d}-batch{number:04d}.json"
    log_path = where.logs / f"run{run_id:05d}-batch{number:04d}.log"
    job = {"run_id": run_id, "batch": number, "links": links, "warc_dir": str(where.warcs)}
    job["mode"] = mode
    job["log_file"] = str(log_path)
    job_path.write_text(json.dumps(job, indent=2, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "LINKARCHIVE_HOME": str(where.home)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with log_path.open("ab") as log:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "spiders.run", str(job_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BatchFailed(f"batch {number} timed out after {timeout:.0f} s") from exc
    result_file = job_path.with_suffix(".result.json")
    if proc.returncode != 0 or not result_file.exists():
        raise BatchFailed(f"batch {number} exited with status {proc.returncode}; see {log_path}")
    return json.loads(result_file.read_text(encoding="utf-8"))["warc_files"]


@task(retries=2, retry_delay_seconds=1)
def index_new_warcs(home: str) -> dict[str, Any]:
    """Recover what killed crawl processes left open, then index every new closed WARC file."""
    where = paths(home)
    logger = get_run_logger()
    for stale in stale_open_files(where.warcs):
        logger.warning("recovered %s", recover_open_file(stale).describe())
    with session_scope(where.database_url) as session:
        result = index_files(session, where.warcs.glob("*.warc.gz"), where.indexes)
    return result.__dict__


@task
def close_run(
    run_id: int, failed_links: list[int], batches_failed: int, home: str
) -> dict[str, Any]:
    """Give failed batches' links an error outcome and store the run's totals."""
    with session_scope(paths(home).database_url) as session:
        if failed_links:
            record_unreached(session, run_id, failed_links, "crawl batch failed")
        run = finish_run(session, run_id, batches_failed)
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


@flow(name="linkarchive-crawl", task_runner=ThreadPoolTaskRunner(max_workers=PARALLEL_BATCHES))
def crawl_flow(
    source: str | None = None,
    country: str | None = None,
    city: str | None = None,
    kind: str | None = None,
    from_source: str | None = None,
    batch_size: int = 50,
    batch_timeout: float = 1800.0,
    home: str | None = None,
    link_ids: list[int] | None = None,
    mode: str = "crawl",
) -> dict[str, Any]:
    """Archive the selected links (all when nothing is selected) and record a crawl run.

    ``batch_size`` is the most links one crawl process takes; batches keep each host's
    links together and run ``PARALLEL_BATCHES`` at a time.
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
    run_id, batches = open_run({**selection.as_dict(), "mode": mode}, batch_size, home)
    futures = {
        crawl_batch.submit(run_id, number, links, home, batch_timeout, mode): links
        for number, links in enumerate(batches, start=1)
    }
    failed_links: list[int] = []
    batches_failed = 0
    for future in as_completed(list(futures)):
        if isinstance(future.result(raise_on_failure=False), BaseException):
            batches_failed += 1
            failed_links += [link["link_id"] for link in futures[future]]
        index_new_warcs(home)  # closed files of failed attempts are valid too
    return close_run(run_id, failed_links, batches_failed, home)


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
