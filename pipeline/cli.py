"""The ``linkarchive`` command line.

Every failure the user can cause (a bad source, an unknown city, a bad date) ends in one
readable line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from pipeline.catalog import CatalogError, session_scope
from pipeline.catalog.db import forget_engine
from pipeline.catalog.models import LINK_STATUSES
from pipeline.citation import STYLES as CITATION_STYLES
from pipeline.config import Paths, paths
from pipeline.seeds import DEFAULT_SOURCE, LINK_KINDS, SeedError
from pipeline.users import ROLES, UsersError

STATUSES = LINK_STATUSES

DEMO_MARKER = ".linkarchive-demo"
WARC_SUFFIXES = (".warc", ".warc.gz")
LONG_FIELDS = ("title", "url", "label", "final_url", "description", "author")
# A terminal's width is respected; piped output is not squeezed into 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def say(text: str) -> None:
    """Print one plain message line: no markup (it may hold archived text), no wrapping."""
    console.print(text, soft_wrap=True, markup=False)


class UserError(Exception):
    """A problem with what the user asked for, reported as one line."""


def _home(ctx: click.Context) -> Paths:
    return paths(ctx.obj.get("home")).ensure()


def _parse_date(_ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD)", param=param) from None


def _prefect_quiet() -> None:
    """Keep Prefect's console chatter out of the user's way (their settings win), and point
    Prefect at the local API server reused across calls (``flows/prefect_api.py``)."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    from flows.prefect_api import PrefectServerError, use_local_server

    try:
        use_local_server()
    except PrefectServerError as exc:
        raise UserError(str(exc)) from exc


# --- commands ---------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    help="Data home (default $LINKARCHIVE_HOME or ./data).",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """Preserve curated rally reports and photo galleries in WARC files, and catalog them."""
    ctx.ensure_object(dict)
    ctx.obj["home"] = home


@cli.group()
def seeds() -> None:
    """Import and list curated index pages."""


@seeds.command("import")
@click.argument("source", default=DEFAULT_SOURCE)
@click.pass_context
def seeds_import(ctx: click.Context, source: str) -> None:
    """Import an index page (URL or .html file) or a .csv (country,city,kind,label,url)."""
    from pipeline.catalog.importer import import_entries
    from pipeline.seedarchive import archive_import
    from pipeline.seeds import load_source

    where = _home(ctx)
    with console.status(f"Reading {source}"):
        loaded = load_source(source)
    with session_scope(where.database_url) as session:
        result = import_entries(session, loaded.location, loaded.entries, loaded.body)
    archive_import(where.warcs, loaded, result)  # the source itself is evidence too
    say(
        f"Imported {result.entries} entries from {loaded.location}: "
        f"{result.countries_added} new countries, {result.cities_added} new cities, "
        f"{result.links_added} new links ({result.links_total} links listed)."
    )


@seeds.command("list")
@click.option("--country", help="Only this country.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def seeds_list(ctx: click.Context, country: str | None, fmt: str) -> None:
    """List the catalog's countries, cities and links."""
    from pipeline.catalog.queries import Selection, select_links

    with session_scope(_home(ctx).database_url) as session:
        rows = [
            {
                "link_id": link.id,
                "country": link.country.name,
                "city": link.city.name if link.city else None,
                "city_original": link.city.original_name if link.city else None,
                "kind": link.kind,
                "label": link.label,
                "url": link.url,
                "status": link.status,
            }
            for link in select_links(session, Selection(country=country))
        ]
    _emit(rows, fmt, ["link_id", "country", "city", "kind", "label", "status", "url"])


_POOL_OPTION = click.option(
    "--pool",
    default=lambda: os.environ.get("LINKARCHIVE_WORK_POOL") or None,
    help="Run the crawl units on this Prefect work pool's workers (see docs/DEPLOY.md) "
    "[default: $LINKARCHIVE_WORK_POOL; none: this machine].",
)


def _require_pool_server(pool: str | None) -> None:
    """A cluster crawl needs the shared Prefect server its workers poll."""
    if pool:
        from flows.deployments import require_server

        require_server("crawls on a work pool")


@cli.command()
@click.option("--country", help="Only links of this country.")
@click.option("--city", help="Only links of this city.")
@click.option("--kind", type=click.Choice(LINK_KINDS), help="Only links of this kind.")
@click.option("--source", help="Only links listed by this source (imported first if new).")
@click.option(
    "--browser",
    type=click.Choice(["auto", "always", "never"]),
    help="Render pages in Chromium: auto (app shells, log-in walls, platforms; the default, "
    "or $LINKARCHIVE_BROWSER), always (every page, with screenshots), never.",
)
@_POOL_OPTION
@click.pass_context
def crawl(
    ctx: click.Context,
    country: str | None,
    city: str | None,
    kind: str | None,
    source: str | None,
    browser: str | None,
    pool: str | None,
) -> None:
    """Archive the selected links (every link when nothing is selected).

    One crawl process per core (LINKARCHIVE_CRAWL_PROCESSES), each owning whole hosts;
    captures are indexed, and searchable, while the crawl runs. Pages that need a browser
    are rendered in Chromium through a recording proxy (see docs/WARC.md).
    """
    where = _home(ctx)
    _require_pool_server(pool)
    _run_crawl(
        where, country=country, city=city, kind=kind, source=source, browser=browser, pool=pool
    )


def _run_crawl(where: Paths, **selection: Any) -> dict[str, Any]:
    from archive.store import StoreError
    from pipeline.catalog.queries import Selection, select_links
    from pipeline.seeds import load_source
    from pipeline.storage import configured_storage

    # Settings the crawl's processes would otherwise fail on, one unit at a time.
    mode = os.environ.get("LINKARCHIVE_BROWSER", "auto")
    if not selection.get("browser") and mode not in ("auto", "always", "never"):
        raise UserError(f"LINKARCHIVE_BROWSER must be auto, always or never, not {mode!r}")
    try:
        configured_storage()
    except StoreError as exc:
        raise UserError(f"LINKARCHIVE_WARC_STORE: {exc}") from None
    source = selection.pop("source", None)
    import_source = None
    if source:
        location = _known_source(where, source)
        if location is None:
            load_source(source)  # fail early, with one line, on a bad source
            import_source = source
        else:
            selection["from_source"] = location
    with session_scope(where.database_url) as session:
        check = {k: v for k, v in selection.items() if k in ("country", "city", "kind")}
        for optional in ("browser", "pool"):
            if not selection.get(optional):
                selection.pop(optional, None)
        if not import_source and not select_links(session, Selection(**check)):
            raise UserError("no links match the selection: import seeds first")
    _prefect_quiet()
    from flows.crawl import crawl_flow

    started = time.time()
    with _progress(where, started, cluster=bool(selection.get("pool"))):
        result = crawl_flow(
            source=import_source,
            from_source=selection.pop("from_source", import_source),
            home=str(where.home),
            **selection,
        )
    say(
        f"Crawl run {result['run_id']} {result['status']}: {result['links_done']} of "
        f"{result['links_total']} links, {result['captures']} captures, "
        f"{result['bytes_archived'] / 1e6:.1f} MB archived, "
        f"{result['bytes_deduplicated'] / 1e6:.1f} MB deduplicated, "
        f"in {time.time() - started:.0f} s."
    )
    return result


def _known_source(where: Paths, source: str) -> str | None:
    from sqlalchemy import select

    from pipeline.catalog.models import Source

    candidates = {source, str(Path(source).absolute())}
    with session_scope(where.database_url) as session:
        return session.scalar(select(Source.location).where(Source.location.in_(candidates)))


@contextmanager
def _progress(where: Paths, started: float, cluster: bool = False) -> Iterator[None]:
    """Show the running crawl's pages done / total, pages/s, bytes and failures, as its
    crawl units report them (a ``cluster`` run's units are elsewhere: as the shared
    catalog has them); without a terminal (a web app job's log), a line every 5 s."""
    from sqlalchemy import select

    from pipeline.catalog.models import CrawlRun
    from pipeline.catalog.runs import run_totals
    from pipeline.progress import CrawlProgress, read_progress

    stop = threading.Event()
    columns = [TextColumn("[bold]Crawling"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn("pages {task.fields[line]}"), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("crawl", total=None, line="")

        def poll() -> None:
            run_id, total, last_line = None, None, 0.0
            while not stop.wait(0.5):
                try:
                    if run_id is None:
                        with session_scope(where.database_url) as session:
                            run = session.scalar(
                                select(CrawlRun).order_by(CrawlRun.id.desc()).limit(1)
                            )
                            if run is None or run.started_at.timestamp() < started - 5:
                                continue
                            run_id, total = run.id, run.links_total
                    if cluster:
                        with session_scope(where.database_url) as session:
                            totals = run_totals(session, run_id)
                        figures = CrawlProgress(
                            pages=totals["links_done"],
                            pages_failed=totals["links_failed"],
                            requests=totals["captures"],
                            bytes=totals["bytes_archived"],
                        )
                    else:
                        figures = read_progress(where.jobs, run_id)
                    rate = figures.pages / max(time.time() - started, 1e-3)
                    line = (
                        f"{rate:.1f}/s, {figures.requests} requests, "
                        f"{figures.bytes / 1e6:.1f} MB, {figures.pages_failed} failed"
                    )
                    progress.update(bar, total=total, completed=figures.pages, line=line)
                    if not console.is_terminal and time.time() - last_line >= 5:
                        last_line = time.time()
                        console.print(f"progress: {figures.pages}/{total} pages, {line}")
                except Exception:  # noqa: BLE001 - progress must never break a crawl
                    continue

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(2)


@cli.command()
@click.option("--country", help="Only links of this country.")
@click.option("--city", help="Only links of this city.")
@click.option("--kind", type=click.Choice(LINK_KINDS), help="Only links of this kind.")
@click.option("--link", "link_ids", type=click.IntRange(1), multiple=True, help="This link.")
@click.option("--no-recapture", is_flag=True, help="Do not capture changed pages again.")
@_POOL_OPTION
@click.pass_context
def check(
    ctx: click.Context,
    country: str | None,
    city: str | None,
    kind: str | None,
    link_ids: tuple[int, ...],
    no_recapture: bool,
    pool: str | None,
) -> None:
    """Visit each link's live URL, archive the answer, and say what became of it.

    alive, changed (text or images differ from the last capture: captured again in full),
    redirected, soft404, dead (only after LINKARCHIVE_DEAD_AFTER_CHECKS failed checks over
    LINKARCHIVE_DEAD_AFTER_DAYS), blocked or error.
    """
    from pipeline.catalog.queries import Selection, select_links

    where = _home(ctx)
    _require_pool_server(pool)
    selection = Selection(country=country, city=city, kind=kind, link_ids=link_ids or None)
    with session_scope(where.database_url) as session:
        if not select_links(session, selection):
            raise UserError("no links match the selection: import seeds first")
    _prefect_quiet()
    from flows.crawl import check_flow

    with console.status("Checking links"):
        result = check_flow(
            country=country,
            city=city,
            kind=kind,
            link_ids=list(link_ids) or None,
            home=str(where.home),
            recapture=not no_recapture,
            pool=pool,
        )
    counts = ", ".join(f"{len(ids)} {status}" for status, ids in sorted(result["statuses"].items()))
    say(f"Check run {result['run_id']}: {counts or 'nothing checked'}.")
    if "recapture" in result:
        say(f"Changed pages captured again in run {result['recapture']['run_id']}.")


@cli.command()
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_context
def report(ctx: click.Context, output: str) -> None:
    """Write a self-contained HTML report: status per place, health over time, and the
    surviving copy of every dead or changed link."""
    from pipeline.report import render_report

    with session_scope(_home(ctx).database_url) as session:
        page = render_report(session)
    if output == "-":
        click.echo(page)
        return
    Path(output).write_text(page, encoding="utf-8")
    say(f"Wrote {output}")


@cli.group()
def schedule() -> None:
    """Scheduled crawls and checks: Prefect deployments on a real Prefect server."""


@schedule.command("add")
@click.option("--cron", required=True, help="When, as a cron expression (UTC), e.g. '0 3 * * 1'.")
@click.option("--crawl", "what", flag_value="crawl", help="Schedule a crawl.")
@click.option("--check", "what", flag_value="check", help="Schedule a check.")
@click.option("--country")
@click.option("--city")
@click.option("--kind", type=click.Choice(LINK_KINDS))
@click.option("--name", help="The schedule's name (default: made from the choices).")
@click.pass_context
def schedule_add(
    ctx: click.Context,
    cron: str,
    what: str | None,
    country: str | None,
    city: str | None,
    kind: str | None,
    name: str | None,
) -> None:
    """Add (or replace) a schedule."""
    from flows.deployments import add

    if what is None:
        raise UserError("say what to schedule: --crawl or --check")
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
        console.print(_table(["Worker", "Status", "Last heartbeat (UTC)"], cells,
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
    console.print(_table(headers, cells, title="Crawl units of open runs", numeric=range(0, 2)))


@schedule.command("serve")
def schedule_serve() -> None:
    """Run the scheduled crawls and checks until Ctrl-C (they show in the Prefect UI)."""
    from flows.deployments import serve_schedules

    serve_schedules()


@cli.command()
@click.argument("text", required=False)
@click.option("--country", help="Name, original spelling or ISO code.")
@click.option("--city")
@click.option("--kind", type=click.Choice(LINK_KINDS))
@click.option("--language", help="Language of the page, e.g. de.")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--published", metavar="YYYY[-MM]", help="Published in this year or month.")
@click.option("--captured", metavar="YYYY[-MM]", help="Last captured in this year or month.")
@click.option("--since", callback=_parse_date, help="Published on or after (YYYY-MM-DD).")
@click.option("--until", callback=_parse_date, help="Published on or before (YYYY-MM-DD).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "jsonl", "csv"]), default="table"
)
@click.option("--limit", type=click.IntRange(1), help="At most this many results [default: 50].")
@click.option("--all", "every", is_flag=True, help="Every result (for exports).")
@click.option("--facets", "show_facets", is_flag=True, help="Also count results per facet.")
@click.pass_context
def search(
    ctx: click.Context,
    text: str | None,
    fmt: str,
    limit: int | None,
    every: bool,
    show_facets: bool,
    since: date | None,
    until: date | None,
    **filters: str | None,
) -> None:
    """Full-text search of the archived pages, their metadata and places, with filters.

    TEXT: words (all must match), "a phrase", OR, -excluded, prefix*.
    """
    from pipeline.catalog.fulltext import SearchQuery, strip_marks
    from pipeline.catalog.fulltext import search as run_search

    if since and until and since > until:
        raise UserError(f"--since {since} is after --until {until}")
    if every and limit:
        raise UserError("use either --limit or --all")
    if show_facets and fmt in ("csv", "jsonl"):
        raise UserError("--facets works with --format table or json")
    query = SearchQuery(
        text=text, since=since, until=until, limit=None if every else limit or 50, **filters
    )
    with session_scope(_home(ctx).database_url) as session:
        result = run_search(session, query, facets=show_facets)
    if fmt == "table":
        _search_table(result.rows, result.total)
        if show_facets:
            for name, counts in result.facets.items():
                say(f"{name}: " + ", ".join(f"{value} ({count})" for value, count in counts))
        return
    rows = [{**row, "snippet": strip_marks(row["snippet"])} for row in result.rows]
    if fmt == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
    elif fmt == "json" and show_facets:
        facets = {name: [{"value": v, "count": c} for v, c in counts]
                  for name, counts in result.facets.items()}  # fmt: skip
        click.echo(
            json.dumps(
                {"total": result.total, "facets": facets, "rows": rows},
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        _emit(rows, fmt, ["link_id", "country", "city", "kind", "status", "published", "title"])


def _search_table(rows: list[dict[str, Any]], total: int) -> None:
    """Results with their snippets, matches in bold (archived text is data, never markup)."""
    from pipeline.catalog.fulltext import MARK_END, MARK_START

    if not rows:
        say("No results.")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_lines=False)
    for header in ("Link", "Place", "Kind", "Status", "Published"):
        table.add_column(header, no_wrap=True)
    table.add_column("Title and snippet", ratio=1)
    for row in rows:
        cell = Text(row["title"] or row["label"] or row["url"], style="bold")
        if row["snippet"]:
            cell.append("\n")
            parts = row["snippet"].replace(MARK_END, MARK_START).split(MARK_START)
            for index, part in enumerate(parts):
                cell.append(part, style="bold reverse" if index % 2 else "dim")
        place = ", ".join(filter(None, [row["country"], row["city"]]))
        table.add_row(
            *(Text(str(v or "—")) for v in (row["link_id"], place, row["kind"], row["status"],
                                            row["published"])),
            cell,
        )  # fmt: skip
    console.print(table)
    say(f"{len(rows)} of {total} results")


@cli.command()
@click.argument("capture_id", type=int)
@click.option("--style", type=click.Choice(CITATION_STYLES), default="apa", show_default=True)
@click.pass_context
def cite(ctx: click.Context, capture_id: int, style: str) -> None:
    """A citation of a capture: its page, the archived copy and the WARC record."""
    from pipeline.citation import citation_facts
    from pipeline.citation import cite as make_citation

    with session_scope(_home(ctx).database_url) as session:
        facts = citation_facts(session, capture_id)
    click.echo(make_citation(facts, style))


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def status(ctx: click.Context, fmt: str) -> None:
    """Per country and city: links, archived, dead, errors and last capture; then the units
    of open crawl runs and, in a cluster (LINKARCHIVE_WORK_POOL), its workers."""
    from pipeline.catalog.queries import status_summary
    from pipeline.catalog.runs import active_units

    with session_scope(_home(ctx).database_url) as session:
        rows = status_summary(session)
        units = active_units(session)
    if fmt == "table":
        _status_table(rows)
        pool = os.environ.get("LINKARCHIVE_WORK_POOL")
        if pool and os.environ.get("PREFECT_API_URL"):
            from flows.deployments import workers

            _workers_tables(pool, workers(pool), units)
        else:
            _units_table(units)
    else:
        _emit(rows, fmt, list(rows[0]) if rows else [])


def _status_table(rows: list[dict[str, Any]]) -> None:
    def day(moment: str | None) -> str:
        return moment[:16].replace("T", " ") if moment else "—"

    counts = ("links", "archived", "changed", "dead", "soft404", "blocked", "error", "pending")
    cells = [
        [row["country"], row["city"] or "—", *(str(row[k]) for k in counts),
         day(row["last_check"]), day(row["last_capture"])]
        for row in rows
    ]  # fmt: skip
    headers = ["Country", "City", "Links", "Arch.", "Chg.", "Dead", "S404", "Blk.", "Err.",
               "Pend.", "Last check", "Last capture"]  # fmt: skip
    console.print(_table(headers, cells, title="Links per country and city", numeric=range(2, 10)))


def _table(
    headers: list[str],
    cells: list[list[str]],
    *,
    title: str | None = None,
    numeric: Iterable[int] = (),
    flexible: Iterable[int] = (),
) -> Table:
    """A compact table: short columns keep their full width, ``flexible`` ones give way."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    numeric, flexible = set(numeric), set(flexible)
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    fixed = sum(w for i, w in enumerate(widths) if i not in flexible) + 2 * len(headers)
    share = max(12, (console.width - fixed) // len(flexible)) if flexible else 0
    for index, header in enumerate(headers):
        width = min(widths[index], share) if index in flexible else widths[index]
        table.add_column(
            header, justify="right" if index in numeric else "left", no_wrap=True, width=width
        )
    for row in cells:
        texts = [Text(cell) for cell in row]  # archived text is data, never markup
        for index in flexible:
            texts[index].truncate(share, overflow="ellipsis")
        table.add_row(*texts)
    return table


@cli.command()
@click.argument("link_id", type=int)
@click.pass_context
def show(ctx: click.Context, link_id: int) -> None:
    """A link and its captures."""
    from pipeline.catalog.queries import link_captures

    with session_scope(_home(ctx).database_url) as session:
        link, captures = link_captures(session, link_id)
        place = ", ".join(filter(None, [link.country.name, link.city.name if link.city else None]))
        say(f"Link {link.id}: {place} — {link.kind} “{link.label}”")
        say(f"  url: {link.url}\n  status: {link.status}")
        if link.final_url and link.final_url != link.url:
            say(f"  final url: {link.final_url}")
        headers = ["Capture", "Captured at", "Role", "HTTP", "Type", "Bytes", "URL", "WARC"]
        cells = [
            [
                str(c.id),
                c.captured_at.isoformat(timespec="seconds") + "Z",
                c.role or "",
                str(c.http_status or ""),
                (c.content_type or "").split(";")[0],
                str(c.size),
                c.url,
                f"{c.warc_file}@{c.warc_offset}",
            ]
            for c in captures
        ]
        if not captures:
            say("  no captures yet")
            return
        console.print(_table(headers, cells, numeric=[0, 3, 5], flexible=[6, 7]))


@cli.command()
@click.argument("capture_id", type=int)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--reason", help="Why it is retrieved (written into the capture's custody ledger).")
@click.option(
    "--requested-by",
    metavar="NAME",
    help="Who asked for it (default $LINKARCHIVE_ACTOR, else user@host).",
)
@click.pass_context
def get(
    ctx: click.Context,
    capture_id: int,
    output: str,
    reason: str | None,
    requested_by: str | None,
) -> None:
    """Write a capture's archived payload, decoded, to a file ('-' for stdout).

    The retrieval is appended to the capture's custody ledger.
    """
    from pipeline.custody import current_actor
    from pipeline.retrieval import retrieve_payload

    got = retrieve_payload(
        _home(ctx),
        capture_id,
        actor=requested_by or current_actor(),
        reason=reason,
        output=output,
    )
    if output != "-":
        say(f"Wrote {len(got.body)} bytes of {got.capture.url} to {output}")


@cli.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Archive the bundled offline replica world end to end and show what was found."""
    from pipeline.replica import ReplicaWorld

    where = paths(Path(ctx.obj.get("home") or paths().home) / "demo")
    _reset_demo_home(where.home)
    where.ensure()
    (where.home / DEMO_MARKER).write_text("created by `linkarchive demo`; safe to delete\n")
    # Only loopback: the demo must never reach another host.
    os.environ["LINKARCHIVE_ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ.setdefault("LINKARCHIVE_AUTOTHROTTLE_START_DELAY", "0.2")
    from pipeline.replica import social

    with ReplicaWorld() as world:
        say(f"Replica world up: index page at {world.index_url}")
        say(f"Data home: {where.home}")
        _run_crawl(where, source=world.index_url)
        # Posts on a social platform: app shells, an endless feed, a video, a log-in wall.
        pulse = world.url(social.SITE, social.LIST_PATH)
        say(f"\nNow the social platform's posts ({pulse}), rendered in Chromium where needed:")
        _run_crawl(where, source=pulse)
        post_url = world.url(social.SITE, social.POST_PATH)
    from pipeline.catalog.fulltext import SearchQuery
    from pipeline.catalog.fulltext import search as run_search
    from pipeline.catalog.queries import status_summary

    with session_scope(where.database_url) as session:
        _status_table(status_summary(session))
        picks = []
        for query in (
            SearchQuery(status="alive", limit=4),
            SearchQuery(kind="photo_gallery", limit=2),
            SearchQuery(status="redirected", limit=1),
            SearchQuery(status="dead", limit=1),
        ):
            picks += run_search(session, query, facets=False).rows
    say("\nA few of the archived links:")
    rows = list({row["link_id"]: row for row in picks}.values())
    _emit(rows, "table", ["link_id", "city", "kind", "status", "images", "title"])
    _show_browser_capture(where, post_url)
    say(f"Try: linkarchive --home {where.home} search 'Blumen OR flowers' --city Berlin")
    say(
        f"Or in the browser: linkarchive --home {where.home} users add NAME --role researcher,"
        f" then linkarchive --home {where.home} serve"
    )


def _show_browser_capture(where: Paths, url: str) -> None:
    """Say what the browser captured of the demo's script-built post."""
    from sqlalchemy import select

    from pipeline.catalog.models import Capture, Link, PageMetadataRow

    with session_scope(where.database_url) as session:
        link = session.scalar(select(Link).where(Link.url == url))
        if link is None or link.last_capture_id is None:
            say("\nThe browser-captured post was not archived: see the crawl's log.")
            return
        meta = session.get(PageMetadataRow, link.last_capture_id)
        shot = session.scalar(
            select(Capture.id).where(Capture.link_id == link.id, Capture.role == "screenshot")
        )
    if not shot:
        say("\nNo browser here (apt-get install chromium): the script-built post kept only its "
            "plain capture, \"Loading…\".")  # fmt: skip
        return
    say(
        f'\nRendered in Chromium: link {link.id}, "{meta.title if meta else link.label}" '
        f'({link.status}); a plain fetch saw only "Loading…".'
    )
    say(f"Its screenshot is capture {shot}: open /links/{link.id} in the web app (below).")


def _reset_demo_home(home: Path) -> None:
    """Start the demo afresh, deleting only a folder the demo itself created."""
    if not home.exists():
        return
    if not (home / DEMO_MARKER).exists():
        raise UserError(f"{home} exists and was not created by the demo; not touching it")
    forget_engine(paths(home).database_url)
    shutil.rmtree(home)


@cli.group()
def catalog() -> None:
    """The catalog: an index over the WARC files, rebuildable from them alone."""


@catalog.command("rebuild")
@click.option(
    "--into",
    "target",
    help="SQLAlchemy URL of an empty database (default: a new SQLite file in the data home).",
)
@click.option(
    "--store",
    metavar="URI",
    help="Also the WARC files of this store that are not in the data home (fetched, "
    "verified, into cache/warcs/; default: $LINKARCHIVE_WARC_STORE).",
)
@click.pass_context
def catalog_rebuild(ctx: click.Context, target: str | None, store: str | None) -> None:
    """Re-create the catalog from the WARC files; the current catalog is left untouched."""
    from sqlalchemy import func, select

    from archive.store import StoreError, open_storage
    from pipeline.catalog.models import CrawlRun, Link, WarcFile
    from pipeline.catalog.runs import finish_run
    from pipeline.indexer import index_files
    from pipeline.storage import configured_storage, fetch_missing, record_stored

    where = _home(ctx)
    if target is None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        target = f"sqlite:///{where.home / f'catalog-rebuilt-{stamp}.sqlite'}"
    if target == where.database_url:
        raise UserError("--into must name another database than the current catalog")
    files = sorted(where.warcs.glob("*.warc.gz"))
    fetched: list[Path] = []
    try:
        storage = open_storage(store) if store else configured_storage()
        if storage is not None:
            with console.status(f"Fetching WARC files missing here from {storage.uri}"):
                fetched = fetch_missing(storage, where, {p.name for p in files})
    except StoreError as exc:
        raise UserError(str(exc)) from None
    files = sorted(files + fetched, key=lambda p: p.name)  # names are in time order
    with session_scope(target) as session:
        if session.scalar(select(func.count(WarcFile.id))) or session.scalar(
            select(func.count(Link.id))
        ):
            raise UserError(f"{target} is not empty; rebuild into an empty database")
        with console.status(f"Indexing {len(files)} WARC files"):
            result = index_files(session, files)
        if storage is not None and fetched:
            record_stored(session, storage, [p.name for p in fetched])
        for run in session.scalars(select(CrawlRun)):
            finish_run(session, run.id).status = "rebuilt"
    say(
        f"Rebuilt from {result.files} WARC files: {result.captures} captures, "
        f"{result.outcomes} link outcomes, into {target}"
    )
    say(f"Use it with LINKARCHIVE_DATABASE_URL={target}")


@cli.group()
def warc() -> None:
    """Look after the WARC files of the data home."""


@warc.command("recover")
@click.pass_context
def warc_recover(ctx: click.Context) -> None:
    """Close WARC files left open by killed crawls (torn tails kept aside) and index them."""
    from archive import recover_open_file, stale_open_files
    from pipeline.indexer import index_files

    where = _home(ctx)
    stale = stale_open_files(where.warcs)
    for path in stale:
        say(recover_open_file(path).describe())
    with session_scope(where.database_url) as session:
        result = index_files(session, where.warcs.glob("*.warc.gz"), where.indexes)
    say(f"{len(stale)} files recovered; {result.files} files indexed ({result.captures} captures).")


@warc.command("push")
@click.option("--store", metavar="URI", help="s3://bucket/prefix or a folder "
              "(default: $LINKARCHIVE_WARC_STORE).")  # fmt: skip
@click.pass_context
def warc_push(ctx: click.Context, store: str | None) -> None:
    """Copy indexed WARC files (with CDXJ and timestamp tokens) into the WARC store.

    Each copy is verified (size, SHA-256) and recorded in the catalog; stores never
    overwrite, so pushing again is harmless. Local files are kept.
    """
    from archive.store import StoreError, open_storage
    from pipeline.storage import configured_storage, push_files

    where = _home(ctx)
    try:
        storage = open_storage(store) if store else configured_storage()
    except StoreError as exc:
        raise UserError(str(exc)) from None
    if storage is None:
        raise UserError("no WARC store: set LINKARCHIVE_WARC_STORE or give --store")
    with session_scope(where.database_url) as session:
        result = push_files(session, where, storage, anywhere=True)
    for problem in result.problems:
        say(f"not stored: {problem}")
    say(f"{len(result.stored)} WARC files stored in {storage.uri}.")
    if result.problems:
        raise click.exceptions.Exit(1)


@warc.command("import")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.pass_context
def warc_import(ctx: click.Context, sources: tuple[str, ...]) -> None:
    """Index WARC files written by other tools (wget, Heritrix, Browsertrix, pywb...) where
    they are, without copying or altering them."""
    from pipeline.indexer import import_files

    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            files += [p for p in sorted(source.rglob("*")) if p.name.endswith(WARC_SUFFIXES)]
        else:
            files.append(source)
    if not files:
        raise UserError(f"no WARC files (*.warc, *.warc.gz) in {', '.join(sources)}")
    with session_scope(_home(ctx).database_url) as session:
        result = import_files(session, files)
    for problem in result.problems:
        Console(stderr=True).print(f"linkarchive: skipped: {problem}", markup=False, soft_wrap=True)
    say(
        f"Imported {result.files} WARC files ({result.skipped} already in the catalog): "
        f"{result.captures} captures, {result.bytes / 1e6:.1f} MB"
        + (
            f"; {result.duplicates} records already indexed from other files."
            if result.duplicates
            else "."
        )
    )
    if result.problems:
        raise click.exceptions.Exit(1)


@cli.group()
def export() -> None:
    """Package archived links for sharing and replay."""


@export.command("wacz")
@click.option("--country", help="Only links of this country.")
@click.option("--city", help="Only links of this city.")
@click.option("--kind", type=click.Choice(LINK_KINDS), help="Only links of this kind.")
@click.option("--run", "run_id", type=click.IntRange(1), help="Only captures of this crawl run.")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .wacz file."
)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.pass_context
def export_wacz(
    ctx: click.Context,
    country: str | None,
    city: str | None,
    kind: str | None,
    run_id: int | None,
    output: str,
    force: bool,
) -> None:
    """Write the selected links' captures as a WACZ package (ReplayWeb.page, pywb)."""
    from archive.wacz import WaczError, write_wacz
    from pipeline.catalog.queries import Selection
    from pipeline.export import ExportError, plan_export

    target = _wacz_output(output, force)
    where = _home(ctx)
    try:
        with session_scope(where.database_url) as session:
            plan = plan_export(
                session, Selection(country=country, city=city, kind=kind), where.warcs, run_id
            )
        with console.status(f"Packaging {len(plan.members)} WARC records"):
            summary = write_wacz(
                target,
                plan.members,
                plan.pages,
                title=plan.title,
                description=plan.description,
                overwrite=force,
            )
    except (ExportError, WaczError) as exc:
        raise UserError(str(exc)) from exc
    except FileExistsError:
        raise UserError(f"{output} exists; use --force to replace it") from None
    for warning in plan.warnings:
        Console(stderr=True).print(f"linkarchive: warning: {warning}", markup=False, soft_wrap=True)
    say(
        f"Wrote {output}: {plan.links} links, {summary.pages} pages, {summary.records} WARC "
        f"records ({summary.warc_bytes / 1e6:.1f} MB) from {len(plan.files)} WARC files."
    )


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.pass_context
def replay(ctx: click.Context, port: int) -> None:
    """Serve the archive for viewing in pywb on 127.0.0.1, until Ctrl-C."""
    import signal
    import subprocess

    from pipeline.replay import archived_pages, find_wayback, prepare, replay_url

    wayback = find_wayback()
    if wayback is None:
        raise UserError(
            "pywb is not installed: pip install -e '.[replay]' (or set LINKARCHIVE_WAYBACK)"
        )
    where = _home(ctx)
    base = f"http://127.0.0.1:{port}"
    with session_scope(where.database_url) as session:
        root = prepare(where, session)
        for link, capture in archived_pages(session):
            say(f"{link.id:>5}  {replay_url(base, capture)}")
    say(f"Replaying {where.warcs} at {base}/linkarchive/ (Ctrl-C to stop)")
    server = subprocess.Popen([wayback, "--bind", "127.0.0.1", "--port", str(port)], cwd=root)

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a terminated replay takes its server along
    try:
        server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(10)


def _wacz_output(output: str, force: bool) -> Path:
    """Where a package may be written: a .wacz name, in a folder that exists, not in the
    way of an existing file unless --force."""
    target = Path(output)
    if target.suffix != ".wacz":
        raise UserError(f"{output}: a WACZ package's name must end in .wacz")
    if target.exists() and not force:
        raise UserError(f"{output} exists; use --force to replace it")
    if not target.absolute().parent.is_dir():
        raise UserError(f"cannot write {output}: no directory {target.absolute().parent}")
    return target


@cli.group()
def evidence() -> None:
    """Evidence packages for legal teams: export, verify, the archive's key."""


def _parse_moment(_ctx: click.Context, param: click.Parameter, value: str | None):  # noqa: ANN202
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date or time (use e.g. 2020-10-10 or 2020-10-10T18:00Z)",
            param=param,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@evidence.command("export")
@click.argument("target", required=False)
@click.option("--capture", "capture_id", type=click.IntRange(1), help="Export this capture.")
@click.option("--at", callback=_parse_moment, help="The capture closest to this time (UTC).")
@click.option("--reason", required=True, help="Why this evidence is exported (recorded).")
@click.option("--requested-by", help="Who asked for it (recorded; default: you).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.pass_context
def evidence_export(
    ctx: click.Context,
    target: str | None,
    capture_id: int | None,
    at: datetime | None,
    reason: str,
    requested_by: str | None,
    output: str,
    force: bool,
) -> None:
    """Export one capture (LINK_ID, URL or --capture ID) as a signed evidence package."""
    from pipeline.retrieval import export_package, tsa_url

    path = _wacz_output(output, force)
    where = _home(ctx)
    with console.status("Packaging, signing" + (" and timestamping" if tsa_url() else "")):
        result = export_package(
            where,
            path,
            reason=reason,
            requested_by=requested_by,
            target=target,
            capture_id=capture_id,
            at=at,
            overwrite=force,
        )
    say(
        f"Wrote {output}: capture {result.capture_id}, {result.records} WARC records, signed by "
        f"{result.fingerprint}" + (", timestamped." if result.timestamped else ".")
    )


@evidence.command("verify")
@click.argument("package", type=click.Path(exists=True, dir_okay=False))
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False))
@click.option("--tsa-cert", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def evidence_verify(
    ctx: click.Context, package: str, public_key: str | None, tsa_cert: str | None
) -> None:
    """Check a package offline: file hashes, signature, custody chain, WARC digests, timestamp.

    Needs no catalog; where this data home's catalog holds the capture, the verification
    is added to its custody ledger.
    """
    from pipeline.evidence import record_verification, verify_package

    verdict = verify_package(
        Path(package),
        public_key=Path(public_key) if public_key else None,
        tsa_cert=Path(tsa_cert) if tsa_cert else None,
    )
    for name, value in verdict.facts.items():
        say(f"  {name}: {value}")
    for note in verdict.notes:
        say(f"  note: {note}")
    where = paths(ctx.obj.get("home"))
    if where.home.exists() and record_verification(where, Path(package), verdict):
        say("  custody: this verification is recorded in the catalog's ledger")
    if verdict.problems:
        raise UserError(f"NOT VERIFIED: {verdict.problems[0]}")
    say(f"VERIFIED: {package}")


@evidence.command("key")
@click.pass_context
def evidence_key(ctx: click.Context) -> None:
    """Print the archive's public key and its fingerprint (created on first use)."""
    from archive.signing import fingerprint, load_or_create_key, public_key_pem
    from pipeline.evidence import key_path

    key = load_or_create_key(key_path(_home(ctx)))
    click.echo(public_key_pem(key).rstrip("\n"))
    say(f"fingerprint: {fingerprint(key)}")


@cli.command()
def replica() -> None:
    """Serve the offline replica world until Ctrl-C (for trying the crawler by hand)."""
    from pipeline.replica import ReplicaWorld

    with ReplicaWorld() as world:
        for site, url in world.base_urls.items():
            say(f"{site:>8}: {url}")
        say(f"index page: {world.index_url}\nCtrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@cli.group()
def users() -> None:
    """Users of the web app and the JSON API, and their tokens."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do.")
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str) -> None:
    """Add a user; their token is printed once (only its SHA-256 is kept)."""
    from pipeline.users import add_user

    with session_scope(_home(ctx).database_url) as session:
        _user, token = add_user(session, name, role)
    say(f"Token for {name} ({role}), shown once: {token}")


@users.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def users_list(ctx: click.Context, fmt: str) -> None:
    """List users with their role, creation and last sign-in (never tokens)."""
    from pipeline.users import list_users

    def moment(value: datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") + "Z" if value else None

    with session_scope(_home(ctx).database_url) as session:
        rows = [
            {
                "name": user.name,
                "role": user.role,
                "created": moment(user.created_at),
                "last_login": moment(user.last_login_at),
            }
            for user in list_users(session)
        ]
    _emit(rows, fmt, ["name", "role", "created", "last_login"])


@users.command("remove")
@click.argument("name")
@click.pass_context
def users_remove(ctx: click.Context, name: str) -> None:
    """Remove a user and end their sessions."""
    from pipeline.users import remove_user

    with session_scope(_home(ctx).database_url) as session:
        remove_user(session, name)
    say(f"Removed user {name}.")


@users.command("token")
@click.argument("name")
@click.pass_context
def users_token(ctx: click.Context, name: str) -> None:
    """Issue a new token for a user; the old one and their sessions stop working."""
    from pipeline.users import get_user, new_token

    with session_scope(_home(ctx).database_url) as session:
        token = new_token(session, name)
        role = get_user(session, name).role
    say(f"Token for {name} ({role}), shown once: {token}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the web app (search, cite, retrieve, manage) until Ctrl-C."""
    import ipaddress

    import uvicorn

    from pipeline.web.app import create_app

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        Console(stderr=True).print(
            f"linkarchive: warning: listening on {host}, not loopback: put TLS in front of it",
            highlight=False, markup=False, soft_wrap=True,
        )  # fmt: skip
    app = create_app(_home(ctx))
    say(f"Serving {_home(ctx).home} on http://{host}:{port}/  (Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)


# --- output -----------------------------------------------------------------------------


def _emit(rows: list[dict[str, Any]], fmt: str, columns: list[str]) -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else columns)
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        headers = [column.replace("_", " ").title() for column in columns]
        cells = [["" if row.get(c) is None else str(row[c]) for c in columns] for row in rows]
        flexible = [i for i, c in enumerate(columns) if c in LONG_FIELDS]
        console.print(_table(headers, cells, flexible=flexible) if rows else "No results.")


# --- entry point ------------------------------------------------------------------------

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    SeedError,
    CatalogError,
    OSError,
    UsersError,
)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from archive.signing import SigningError
    from archive.timestamp import TimestampError
    from flows.deployments import ScheduleError
    from pipeline.catalog.queries import QueryError
    from pipeline.custody import CustodyError
    from pipeline.evidence import EvidenceError
    from pipeline.retrieval import RetrievalError

    return (
        ScheduleError,
        *EXPECTED_ERRORS,
        QueryError,
        EvidenceError,
        RetrievalError,
        SigningError,
        TimestampError,
        CustodyError,
    )


def _fail(message: str, code: int) -> int:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    Console(stderr=True).print(
        f"linkarchive: error: {first_line}", highlight=False, soft_wrap=True, markup=False
    )
    return code


def main(argv: list[str] | None = None, run: Callable[..., Any] = cli.main) -> int:
    """Run the CLI; expected failures become one line on stderr and a non-zero exit."""
    try:
        code = run(args=argv, prog_name="linkarchive", standalone_mode=False)
        if isinstance(code, int):  # a command that ended with click's Exit(code)
            return code
    except click.UsageError as exc:
        hint = f" (try `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        return _fail(f"{exc.format_message()}{hint}", 2)
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code or 1)
    except click.exceptions.Abort:
        return _fail("aborted", 130)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        return _fail("interrupted; everything already archived is kept", 130)
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, _expected_errors()):
            return _fail(str(exc) or type(exc).__name__, 1)
        if os.environ.get("LINKARCHIVE_DEBUG"):
            raise
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (LINKARCHIVE_DEBUG=1 shows details)", 1
        )
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
