"""A crawl unit on a worker: the flow a ``linkarchive worker`` runs, on any machine.

The crawl flow (``flows.fanout``) submits each unit of a cluster run as a run of this
flow's deployment on a Prefect process work pool; whichever worker picks it up:

1. claims the unit in the shared catalog (an earlier attempt declared dead is fenced out);
2. holds the unit's host shards (Prefect global concurrency limits with leases, which
   expire when a killed holder stops renewing them), so no host is crawled by two units
   anywhere in the cluster at once, and crawls the unit's links without an outcome yet,
   in a Scrapy subprocess writing into the worker's own data home;
3. from the claim on, every few seconds: renews it (the heartbeat the crawl flow watches)
   and moves closed WARC files into the WARC store, each indexed into the shared catalog
   only once its stored copy is verified (``pipeline.storage.move_into_store``);
4. marks the unit done. A unit already done returns its result: a unit run twice
   commits once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from prefect import flow, get_run_logger
from prefect.concurrency.sync import concurrency

from flows.crawl import crawl_attempt, index_pass
from pipeline.catalog import session_scope
from pipeline.catalog.runs import UnitTaken, beat, claim_unit, finish_unit, unit_links, unit_of
from pipeline.config import paths

# A unit's heartbeat (and indexing pass) period; the crawl flow declares an attempt dead
# after LINKARCHIVE_UNIT_DEAD_SECONDS without one.
HEARTBEAT_SECONDS = float(os.environ.get("LINKARCHIVE_UNIT_HEARTBEAT_SECONDS", 5))
# How long a killed worker's hold on its hosts outlives it (Prefect's minimum is 60 s).
LEASE_SECONDS = max(60.0, float(os.environ.get("LINKARCHIVE_HOST_LEASE_SECONDS", 60)))
HOST_LIMIT_PREFIX = "linkarchive-hosts-"


def host_limit_name(shard: int) -> str:
    """The Prefect global concurrency limit (one slot) guarding a host shard."""
    return f"{HOST_LIMIT_PREFIX}{shard:03d}"


def worker_name() -> str:
    """How this worker is named in the catalog (``linkarchive worker --name``)."""
    return os.environ.get("LINKARCHIVE_WORKER_NAME") or socket.gethostname()


@flow(name="linkarchive-unit", retries=1, retry_delay_seconds=5)
def unit_flow(
    run_id: int,
    number: int,
    mode: str = "crawl",
    browser: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Crawl unit ``number`` of run ``run_id`` on this worker; returns its result."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    home = str(paths().ensure().home)
    database = paths(home).database_url
    owner = str(flow_run.id)
    with session_scope(database) as session:
        unit = unit_of(session, run_id, number)
        if unit.status == "done":
            return unit.result or {}
        # Claimed before the hosts are held, and beating while it waits for them: a worker
        # killed while waiting is noticed like one killed while crawling.
        claim_unit(session, unit, owner, worker_name())
        unit_id, attempt = unit.id, unit.attempts
        names = [host_limit_name(shard) for shard in unit.shards]
    stop, finished = threading.Event(), threading.Event()
    moved = {"files": 0, "store_seconds": 0.0, "index_seconds": 0.0}
    keeper = threading.Thread(
        target=_keep, args=(unit_id, owner, home, stop, finished, logger, moved), daemon=True
    )
    keeper.start()
    try:
        with concurrency(names, occupy=1, lease_duration=LEASE_SECONDS, strict=True):
            if stop.is_set():
                raise UnitTaken(f"unit {number} of run {run_id} was taken over while waiting")
            with session_scope(database) as session:
                links = unit_links(session, unit_of(session, run_id, number), unreached=True)
            logger.info(
                "unit %d of run %d: %d links on %s", number, run_id, len(links), worker_name()
            )
            result = crawl_attempt(
                run_id, number, attempt, links, home, timeout, mode, browser, stop=stop
            )
    finally:
        finished.set()
        keeper.join()
    _add(moved, index_pass(home, move=True))
    result = {**result, "moved": moved}
    with session_scope(database) as session:
        finish_unit(session, unit_id, owner, "done", result)
    return result


def _keep(
    unit_id: int,
    owner: str,
    home: str,
    stop: threading.Event,
    finished: threading.Event,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    moved: dict[str, Any],
) -> None:
    """While the crawl process runs: heartbeat, index and store; ``stop`` the crawl if
    another attempt has taken the unit over (this one was declared dead)."""
    database = paths(home).database_url
    while not finished.wait(HEARTBEAT_SECONDS):
        try:
            with session_scope(database) as session:
                beat(session, unit_id, owner)
            _add(moved, index_pass(home, move=True))
        except UnitTaken as exc:
            logger.error("%s: stopping this attempt", exc)
            stop.set()
            return
        except Exception as exc:  # a failed pass is tried again on the next beat
            logger.warning("unit %d: heartbeat pass failed: %s", unit_id, exc)


def _add(totals: dict[str, Any], figures: dict[str, Any]) -> None:
    for key in totals:
        totals[key] += figures.get(key, 0)
