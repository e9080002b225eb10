"""Schedules: the crawl and check flows as Prefect deployments on a real Prefect server.

Defined apart from the flows. Prefect's temporary local server cannot run schedules, so
every call here needs ``PREFECT_API_URL`` (``prefect server start --host 127.0.0.1``).
The server is the store: a schedule is a deployment tagged ``linkarchive``.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from prefect import Flow, serve
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
from prefect.settings import PREFECT_API_URL

from flows.crawl import check_flow, crawl_flow

TAG = "linkarchive"
FLOWS: dict[str, Flow[..., Any]] = {"crawl": crawl_flow, "check": check_flow}


class ScheduleError(Exception):
    """A schedule that cannot be made, found or served (one line)."""


def require_server(what: str = "schedules") -> str:
    """The Prefect API URL, or a clear error when only the temporary server would run
    (``what`` needs a real one: schedules, workers)."""
    url = PREFECT_API_URL.value()
    if not url:
        raise ScheduleError(
            f"{what} need a real Prefect server: run `prefect server start --host 127.0.0.1`"
            " and set PREFECT_API_URL=http://127.0.0.1:4200/api (docs/DEPLOY.md)"
        )
    return url


def _flow_named(name: str) -> Flow[..., Any]:
    for flow in FLOWS.values():
        if flow.name == name:
            return flow
    raise ScheduleError(f"deployment of an unknown flow {name!r}")


def check_cron(cron: str) -> None:
    """:class:`ScheduleError` in one line if ``cron`` is no cron expression Prefect takes."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone="UTC")
    except ValidationError as exc:
        why = str(exc.errors()[0].get("msg", "")).removeprefix("Value error, ")
        raise ScheduleError(
            f"invalid cron {cron!r}: {why} (five fields: minute hour day-of-month month "
            "day-of-week, e.g. '0 3 * * 1' for Mondays at 03:00 UTC)"
        ) from None


def add(name: str, cron: str, what: str, parameters: dict[str, Any]) -> str:
    """Create (or update) the schedule ``name``: run ``what`` ("crawl"/"check") on ``cron``."""
    check_cron(cron)
    require_server()
    try:
        deployment = FLOWS[what].to_deployment(
            name=name,
            cron=cron,
            parameters=parameters,
            tags=[TAG],
            description=f"linkarchive {what} on '{cron}'",
        )
    except ValueError as exc:
        raise ScheduleError(f"invalid schedule {cron!r}: {exc}") from exc
    deployment.apply()
    return f"{FLOWS[what].name}/{name}"


def list_schedules() -> list[dict[str, Any]]:
    """The schedules on the server: name, flow, cron, parameters."""
    require_server()
    with get_client(sync_client=True) as client:
        deployments = client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG]))
        )
        flows = {d.flow_id: client.read_flow(d.flow_id).name for d in deployments}
    return [
        {
            "name": d.name,
            "flow": flows[d.flow_id],
            "cron": [getattr(s.schedule, "cron", None) for s in d.schedules],
            "parameters": d.parameters,
            "paused": d.paused,
        }
        for d in sorted(deployments, key=lambda d: d.name)
    ]


def remove(name: str) -> None:
    """Delete the schedule ``name``."""
    require_server()
    with get_client(sync_client=True) as client:
        found = [
            d
            for d in client.read_deployments(
                deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG]))
            )
            if d.name == name
        ]
        if not found:
            raise ScheduleError(f"no schedule named {name!r} (see `linkarchive schedule list`)")
        for deployment in found:
            client.delete_deployment(deployment.id)


def serve_schedules() -> None:
    """Run the server's linkarchive schedules in this process until stopped."""
    schedules = list_schedules()
    if not schedules:
        raise ScheduleError("no schedules to serve: add one with `linkarchive schedule add`")
    deployments = [
        _flow_named(s["flow"]).to_deployment(
            name=s["name"], cron=[c for c in s["cron"] if c], parameters=s["parameters"], tags=[TAG]
        )
        for s in schedules
    ]
    # Schedules stay active when this process stops: a restart (or another `schedule serve`)
    # picks them up, instead of every one being left paused.
    serve(*deployments, pause_on_shutdown=False)


# Workers -----------------------------------------------------------------------------

POOL = "linkarchive"


def ensure_pool(pool: str) -> None:
    """Create the process work pool ``pool`` if the server has none of that name."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))


def deploy_units(pool: str) -> str:
    """Create (or update) the deployment of crawl units served by ``pool``'s workers.

    The entrypoint is a module path, so a worker runs the code linkarchive installed on
    its own machine, wherever that is.
    """
    from prefect.deployments.runner import EntrypointType

    from flows.unit import unit_flow

    deployment = unit_flow.to_deployment(
        name=pool,
        work_pool_name=pool,
        tags=[TAG],
        description=f"linkarchive crawl units for the workers of pool {pool!r}",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    deployment.apply(work_pool_name=pool)
    return f"{unit_flow.name}/{pool}"


def workers(pool: str) -> list[dict[str, Any]]:
    """The workers that have polled ``pool``: name, status and last heartbeat (UTC)."""
    from prefect.client.schemas.filters import WorkerFilter
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    with get_client(sync_client=True) as client:
        try:
            found = client.read_workers_for_work_pool(pool, worker_filter=WorkerFilter())
        except ObjectNotFound:
            return []
        except PrefectHTTPStatusError as exc:  # no such pool (yet)
            if exc.response.status_code == 404:
                return []
            raise
    return [
        {
            "name": w.name,
            "status": getattr(w.status, "value", w.status),
            "last_heartbeat": w.last_heartbeat_time.isoformat() if w.last_heartbeat_time else None,
        }
        for w in sorted(found, key=lambda w: w.name)
    ]
