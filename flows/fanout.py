"""Fan a run's crawl units out to workers on a Prefect work pool, and see them through.

Each unit becomes a run of the ``linkarchive-unit`` deployment for the pool
(``flows.unit``); any ``linkarchive worker`` polling that pool may take it, and workers
may join or leave while the crawl runs. The crawl flow then watches every unit's flow
run and its heartbeat in the shared catalog:

* Completed: done.
* Crashed, or Running without a heartbeat for ``LINKARCHIVE_UNIT_DEAD_SECONDS`` (its
  worker was killed with its children; Prefect marks it Crashed then): submitted again,
  up to ``LINKARCHIVE_UNIT_RESUBMITS`` times. Prefect never retries a crashed flow run by
  itself. The new run crawls only the links without an outcome and waits for the dead
  holder's leases on its hosts to expire.
* Failed (its own retries spent) or Cancelled: the unit failed; its unreached links get
  an ``error`` outcome when the run closes.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectAlreadyExists
from prefect.states import Crashed

from flows.unit import host_limit_name, unit_flow
from pipeline.catalog import session_scope
from pipeline.catalog.importer import utcnow
from pipeline.catalog.runs import run_totals, units_of
from pipeline.config import paths

DEAD_SECONDS = float(os.environ.get("LINKARCHIVE_UNIT_DEAD_SECONDS", 60))
RESUBMITS = int(os.environ.get("LINKARCHIVE_UNIT_RESUBMITS", 3))
POLL_SECONDS = 2.0


def deployment_name(pool: str) -> str:
    """The unit deployment serving ``pool`` (one per pool, made by ``linkarchive worker``)."""
    return f"{unit_flow.name}/{pool}"


def ensure_host_limits(shards: set[int]) -> None:
    """Create the one-slot concurrency limits of these host shards if missing."""
    with get_client(sync_client=True) as client:
        for shard in sorted(shards):
            with suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=host_limit_name(shard), limit=1)
                )


def run_units_on_pool(
    run_id: int,
    pool: str,
    home: str,
    mode: str = "crawl",
    browser: str | None = None,
    timeout: float | None = None,
) -> list[int]:
    """Run every unit of ``run_id`` on the workers of ``pool``; returns the numbers of the
    units that failed for good."""
    logger = get_run_logger()
    database = paths(home).database_url
    with session_scope(database) as session:
        units = {unit.number: unit.shards for unit in units_of(session, run_id)}
    ensure_host_limits({shard for shards in units.values() for shard in shards})
    parameters = {"run_id": run_id, "mode": mode, "browser": browser, "timeout": timeout}

    def submit(number: int) -> UUID:
        flow_run = run_deployment(
            deployment_name(pool),
            parameters={**parameters, "number": number},
            flow_run_name=f"run{run_id}-unit{number:03d}",
            timeout=0,
        )
        return flow_run.id

    running = {number: submit(number) for number in sorted(units)}
    submitted = dict.fromkeys(units, 1)
    failed: list[int] = []
    last_report = 0.0
    while running:
        time.sleep(POLL_SECONDS)
        with get_client(sync_client=True) as client:
            runs = {
                r.id: r
                for r in client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(running.values())))
                )
            }
            with session_scope(database) as session:
                rows = {unit.number: unit for unit in units_of(session, run_id)}
            for number, flow_run_id in list(running.items()):
                row, state = rows[number], runs[flow_run_id].state
                kind = state.type if state else StateType.PENDING
                if kind == StateType.COMPLETED:
                    del running[number]
                elif kind in (StateType.FAILED, StateType.CANCELLED):
                    logger.error("unit %d: %s (%s)", number, kind.value, state.message)
                    failed.append(number)
                    del running[number]
                elif kind == StateType.CRASHED or _silent(row, str(flow_run_id)):
                    if kind != StateType.CRASHED:
                        client.set_flow_run_state(
                            flow_run_id,
                            Crashed(
                                message=f"no heartbeat from {row.worker} for {DEAD_SECONDS:.0f} s"
                            ),  # fmt: skip
                            force=True,
                        )
                    if submitted[number] > RESUBMITS:
                        logger.error("unit %d crashed %d times; giving up", number, RESUBMITS + 1)
                        failed.append(number)
                        del running[number]
                        continue
                    logger.warning("unit %d crashed on %s; submitting it again", number, row.worker)
                    running[number] = submit(number)
                    submitted[number] += 1
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            waiting = sum(1 for n in running if rows[n].status == "queued")
            with session_scope(database) as session:
                totals = run_totals(session, run_id)
            logger.info(
                "run %d: %d units running, %d queued for a worker; %d links done, %d captures",
                run_id,
                len(running) - waiting,
                waiting,
                totals["links_done"],
                totals["captures"],
            )
    return sorted(failed)


def _silent(unit: Any, flow_run_id: str) -> bool:
    """Whether the attempt ``flow_run_id`` holds the unit but has stopped beating."""
    if unit.status != "running" or unit.owner != flow_run_id or unit.heartbeat_at is None:
        return False
    return utcnow() - unit.heartbeat_at > timedelta(seconds=DEAD_SECONDS)
