"""``linkarchive schedule`` and ``prefect-server``: deployments on a Prefect server, and the
local one."""

from __future__ import annotations

import json
import os

import click

from pipeline.cli.base import (
    UserError,
    _emit,
    _home,
    cli,
    say,
)
from pipeline.seeds import LINK_KINDS


@cli.group()
def schedule() -> None:
    """Scheduled crawls and checks: Prefect deployments on a real Prefect server."""


@schedule.command("add")
@click.option("--cron", required=True, help="When, as a cron expression (UTC), e.g. '0 3 * * 1'.")
@click.option("--crawl", "crawl", is_flag=True, help="Schedule a crawl.")
@click.option("--check", "check", is_flag=True, help="Schedule a check.")
@click.option("--country")
@click.option("--city")
@click.option("--kind", type=click.Choice(LINK_KINDS))
@click.option("--name", help="The schedule's name (default: made from the choices).")
@click.pass_context
def schedule_add(
    ctx: click.Context,
    cron: str,
    crawl: bool,
    check: bool,
    country: str | None,
    city: str | None,
    kind: str | None,
    name: str | None,
) -> None:
    """Add (or replace) a schedule."""
    from flows.deployments import add, check_cron

    if crawl == check:
        raise UserError(
            "say what to schedule: --crawl or --check (one each: two schedules for both)"
        )
    what = "crawl" if crawl else "check"
    check_cron(cron)
    where = _home(ctx)
    parameters = {"country": country, "city": city, "kind": kind, "home": str(where.home)}
    parameters = {k: v for k, v in parameters.items() if v is not None}
    name = name or "-".join([what, *(str(v) for v in (country, city, kind) if v)])
    say(f"Scheduled {add(name, cron, what, parameters)} on '{cron}'.")


@schedule.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
def schedule_list(fmt: str) -> None:
    """The schedules on the Prefect server."""
    from flows.deployments import list_schedules

    rows = [
        {
            **s,
            "cron": ", ".join(c for c in s["cron"] if c),
            "parameters": json.dumps(s["parameters"]),
        }
        for s in list_schedules()
    ]
    _emit(rows, fmt, ["name", "flow", "cron", "paused", "parameters"])


@schedule.command("remove")
@click.argument("name")
def schedule_remove(name: str) -> None:
    """Remove a schedule."""
    from flows.deployments import remove

    remove(name)
    say(f"Removed schedule {name}.")


@schedule.command("serve")
def schedule_serve() -> None:
    """Run the scheduled crawls and checks until Ctrl-C (they show in the Prefect UI)."""
    from flows.deployments import serve_schedules

    serve_schedules()


# --- the local Prefect server ------------------------------------------------------------


@cli.group("prefect-server")
def prefect_server() -> None:
    """The local Prefect API server that crawls and checks start on first use and reuse."""


@prefect_server.command("status")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def prefect_server_status(fmt: str) -> None:
    """Whether it runs: its API URL, process, and how long it has been idle."""
    from flows.prefect_api import server_status

    status = server_status()
    if fmt == "json":
        click.echo(json.dumps(status))
        return
    if os.environ.get("PREFECT_API_URL"):
        say(f"PREFECT_API_URL is set: flows use {os.environ['PREFECT_API_URL']}")
    if status is None:
        say("No local Prefect server runs; the next crawl or check starts one.")
        return
    state = "running" if status["healthy"] else "not answering"
    say(
        f"Local Prefect server {state}: {status['url']} (UI http://127.0.0.1:{status['port']}), "
        f"pid {status['pid']}, idle {status['idle_seconds_now']:.0f} s of "
        f"{status['idle_seconds']:g} s; log {status['log']}"
    )


@prefect_server.command("stop")
def prefect_server_stop() -> None:
    """Stop it now (the next crawl or check starts another)."""
    from flows.prefect_api import stop_local_server

    stopped = stop_local_server()
    say("Stopped the local Prefect server." if stopped else "No local Prefect server was running.")
