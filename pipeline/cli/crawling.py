"""``linkarchive crawl`` and ``check``: run the flows, here or on a work pool, with progress."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.catalog import session_scope
from pipeline.cli.base import (
    ID,
    MAX_ID,
    UserError,
    _home,
    _prefect_quiet,
    _writable,
    cli,
    console,
    say,
)
from pipeline.config import Paths
from pipeline.seeds import LINK_KINDS

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
@click.option(
    "--resume",
    "resume",
    type=click.IntRange(0, MAX_ID),
    is_flag=False,
    flag_value=0,
    default=None,
    metavar="[RUN]",
    help="Finish an interrupted crawl run (the latest, or RUN): only its links without an "
    "outcome are fetched.",
)
@click.pass_context
def crawl(
    ctx: click.Context,
    country: str | None,
    city: str | None,
    kind: str | None,
    source: str | None,
    browser: str | None,
    pool: str | None,
    resume: int | None,
) -> None:
    """Archive the selected links (every link when nothing is selected).

    One crawl process per core (LINKARCHIVE_CRAWL_PROCESSES), each owning whole hosts;
    captures are indexed, and searchable, while the crawl runs. Pages that need a browser
    are rendered in Chromium through a recording proxy (see docs/WARC.md).
    """
    where = _home(ctx)
    if resume is not None:
        from pipeline.catalog.runs import close_abandoned, interrupted_run

        if country or city or kind or source or pool:
            raise UserError("--resume finishes a run as it was selected: give no selection")
        _writable(where, "a crawl writes WARC files and the catalog")
        with session_scope(where.database_url) as session:
            close_abandoned(session, where.jobs)  # runs whose flow was killed
            run_id = interrupted_run(session, resume or None).id
        _run_crawl(where, resume=run_id, browser=browser)
        return
    _require_pool_server(pool)
    _run_crawl(
        where, country=country, city=city, kind=kind, source=source, browser=browser, pool=pool
    )


def _run_crawl(where: Paths, **selection: Any) -> dict[str, Any]:
    from archive.store import StoreError
    from pipeline.catalog.queries import Selection, select_links
    from pipeline.netpolicy import address_policy
    from pipeline.seeds import load_source
    from pipeline.storage import configured_storage

    _writable(where, "a crawl writes WARC files and the catalog")
    # Settings the crawl's processes would otherwise fail on, one unit at a time.
    mode = os.environ.get("LINKARCHIVE_BROWSER", "auto")
    if not selection.get("browser") and mode not in ("auto", "always", "never"):
        raise UserError(f"LINKARCHIVE_BROWSER must be auto, always or never, not {mode!r}")
    try:
        configured_storage()
    except StoreError as exc:
        raise UserError(f"LINKARCHIVE_WARC_STORE: {exc}") from None
    address_policy()  # a bad LINKARCHIVE_ALLOW_ADDRESSES: one line now, not per unit
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
        fresh = not selection.get("resume") and not import_source  # a resumed run has its links
        if fresh and not select_links(session, Selection(**check)):
            raise UserError("no links match the selection: import seeds first")
    _prefect_quiet()
    from flows.crawl import crawl_flow

    started = time.time()
    with (
        _progress(where, started, cluster=bool(selection.get("pool"))),
        _interruptible(local=not selection.get("pool")),
    ):
        result = crawl_flow(
            source=import_source,
            from_source=selection.pop("from_source", import_source),
            home=str(where.home),
            **selection,
        )
    if result["status"] == "interrupted" and result.get("reason"):
        raise UserError(
            f"crawl run {result['run_id']} stopped: {result['reason']} "
            f"({result['links_done']} of {result['links_total']} links archived and indexed)"
        )
    if result["status"] == "interrupted":
        say(
            f"Crawl run {result['run_id']} interrupted: {result['links_done']} of "
            f"{result['links_total']} links archived and indexed, {result['captures']} "
            "captures. `linkarchive crawl --resume` finishes it without fetching them again."
        )
        raise click.exceptions.Exit(130)
    say(
        f"Crawl run {result['run_id']} {result['status']}: {result['links_done']} of "
        f"{result['links_total']} links, {result['captures']} captures, "
        f"{result['bytes_archived'] / 1e6:.1f} MB archived, "
        f"{result['bytes_deduplicated'] / 1e6:.1f} MB deduplicated, "
        f"in {time.time() - started:.0f} s."
    )
    return result


@contextmanager
def _interruptible(local: bool) -> Iterator[None]:
    """Ctrl-C stops a crawl on this machine within seconds: its processes are stopped
    (their WARC files closed or recovered), what they wrote is indexed, and the run is
    closed as interrupted. A second Ctrl-C leaves at once. (A cluster run's units go on
    on their workers: there Ctrl-C only stops watching them.)"""
    from flows.crawl import INTERRUPTED

    INTERRUPTED.clear()
    if not local:
        yield
        return

    def stop(_signum: int, _frame: object) -> None:
        if INTERRUPTED.is_set():
            raise KeyboardInterrupt
        INTERRUPTED.set()
        say("Stopping: closing WARC files and indexing what was archived (Ctrl-C again to leave).")

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
@click.option("--link", "link_ids", type=ID, multiple=True, help="This link.")
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
    _writable(where, "a check writes WARC files and the catalog")
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
