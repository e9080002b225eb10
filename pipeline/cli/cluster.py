"""``linkarchive worker`` and ``workers``: crawl units on many machines (docs/DEPLOY.md)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import click

from pipeline.catalog import session_scope
from pipeline.cli.base import (
    UserError,
    _home,
    _prefect_quiet,
    _show,
    _table,
    cli,
    say,
)


@cli.command()
@click.option(
    "--pool",
    default=lambda: os.environ.get("LINKARCHIVE_WORK_POOL") or "linkarchive",
    show_default="$LINKARCHIVE_WORK_POOL or linkarchive",
    help="The Prefect work pool to take crawl units from.",
)
@click.option("--name", help="This worker's name [default: the host name].")
@click.option("--limit", type=click.IntRange(1), help="Units at once [default: one per core].")
@click.pass_context
def worker(ctx: click.Context, pool: str, name: str | None, limit: int | None) -> None:
    """Run crawl units of cluster crawls on this machine until stopped (see docs/DEPLOY.md).

    A Prefect process worker on POOL (made if missing, with its unit deployment). WARC
    files are written into this machine's data home, indexed into the shared catalog
    (LINKARCHIVE_DATABASE_URL) and moved into the WARC store (LINKARCHIVE_WARC_STORE).
    """
    from archive.store import StoreError
    from flows.deployments import deploy_units, ensure_pool, require_server
    from pipeline.storage import configured_storage

    where = _home(ctx)
    require_server("workers")
    try:
        storage = configured_storage()
    except StoreError as exc:
        raise UserError(f"LINKARCHIVE_WARC_STORE: {exc}") from None
    if storage is None:
        raise UserError(
            "a worker needs a WARC store other machines can read: set LINKARCHIVE_WARC_STORE"
        )
    _prefect_quiet()
    from flows.crawl import index_pass

    ensure_pool(pool)
    say(f"Deployment {deploy_units(pool)} serves pool {pool!r}.")
    caught_up = index_pass(str(where.home), move=True)  # what a killed worker left here
    if caught_up["files"]:
        say(f"Indexed and stored {caught_up['files']} WARC files left in {where.warcs}.")
    name = name or socket.gethostname()
    command = [
        str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", pool,
        "--type", "process", "--name", name, "--limit", str(limit or os.cpu_count() or 1),
    ]  # fmt: skip
    env = {**os.environ, "LINKARCHIVE_HOME": str(where.home), "LINKARCHIVE_WORKER_NAME": name}
    sys.stdout.flush()
    os.execve(command[0], command, env)


@cli.command("workers")
@click.option("--pool", default=lambda: os.environ.get("LINKARCHIVE_WORK_POOL") or "linkarchive",
              show_default="$LINKARCHIVE_WORK_POOL or linkarchive")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def workers_command(ctx: click.Context, pool: str, fmt: str) -> None:
    """The workers of POOL (from the Prefect server) and the units of open crawl runs."""
    from flows.deployments import require_server, workers
    from pipeline.catalog.runs import active_units

    require_server("workers")
    with session_scope(_home(ctx).database_url) as session:
        units = active_units(session)
    found = workers(pool)
    if fmt == "json":
        click.echo(json.dumps({"pool": pool, "workers": found, "units": units}, indent=2))
        return
    _workers_tables(pool, found, units)


def _workers_tables(pool: str, found: list[dict[str, Any]], units: list[dict[str, Any]]) -> None:
    if found:
        cells = [[w["name"], w["status"], (w["last_heartbeat"] or "—")[:19]] for w in found]
        _show(_table(["Worker", "Status", "Last heartbeat (UTC)"], cells,
                             title=f"Workers of pool {pool}"))  # fmt: skip
    else:
        say(f"No worker has polled pool {pool!r}: start one with `linkarchive worker`.")
    _units_table(units)


def _units_table(units: list[dict[str, Any]]) -> None:
    if not units:
        return
    cells = [
        [str(u["run_id"]), str(u["unit"]), u["status"], u["worker"] or "—", str(u["links"]),
         str(u["attempts"]), (u["heartbeat"] or "—")[:19]]
        for u in units
    ]  # fmt: skip
    headers = ["Run", "Unit", "Status", "Worker", "Links", "Attempts", "Heartbeat (UTC)"]
    _show(_table(headers, cells, title="Crawl units of open runs", numeric=range(0, 2)))
