"""What researchers and lawyers ask: ``search``, ``cite``, ``status``, ``show``, ``get``,
``report``."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipeline.catalog import session_scope
from pipeline.citation import DEFAULT_PUBLIC_URL
from pipeline.citation import STYLES as CITATION_STYLES
from pipeline.cli.base import (
    ID,
    STATUSES,
    UserError,
    _emit,
    _home,
    _parse_date,
    _show,
    _table,
    _writable,
    capture_target,
    cli,
    console,
    say,
)
from pipeline.cli.cluster import _units_table, _workers_tables
from pipeline.seeds import LINK_KINDS


@cli.command()
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_context
def report(ctx: click.Context, output: str) -> None:
    """Write a self-contained HTML report: status per place, health over time, and the
    surviving copy of every dead or changed link."""
    from pipeline.linkcheck.report import render_report

    with session_scope(_home(ctx).database_url) as session:
        page = render_report(session)
    if output == "-":
        click.echo(page)
        return
    Path(output).write_text(page, encoding="utf-8")
    say(f"Wrote {output}")


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
@click.option("--limit", type=ID, help="At most this many results [default: 50].")
@click.option("--all", "every", is_flag=True, help="Every result (for exports).")
@click.option("--facets", "show_facets", is_flag=True, help="Also count results per facet.")
@click.option(
    "--expand",
    is_flag=True,
    help="Add each known word's translations in the rally pages' languages to TEXT "
    "(printed to stderr as 'searching for: ...', to copy and edit).",
)
@click.pass_context
def search(
    ctx: click.Context,
    text: str | None,
    fmt: str,
    limit: int | None,
    every: bool,
    show_facets: bool,
    expand: bool,
    since: date | None,
    until: date | None,
    **filters: str | None,
) -> None:
    """Full-text search of the archived pages, their metadata and places, with filters.

    TEXT: words (all must match), "a phrase", OR, -excluded, prefix*.
    """
    from pipeline.catalog.fulltext import SearchQuery, export_csv, strip_marks
    from pipeline.catalog.fulltext import search as run_search

    if since and until and since > until:
        raise UserError(f"--since {since} is after --until {until}")
    if every and limit:
        raise UserError("use either --limit or --all")
    if show_facets and fmt in ("csv", "jsonl"):
        raise UserError("--facets works with --format table or json")
    if expand:
        if not text or not text.strip():
            raise UserError("--expand needs words to translate")
        text = _expanded(text)
    query = SearchQuery(
        text=text, since=since, until=until, limit=None if every else limit or 50, **filters
    )
    with session_scope(_home(ctx).database_url) as session:
        result = run_search(session, query, facets=show_facets)
    if fmt == "table":
        _search_table(result.rows, str(result.total))
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
                {
                    "total": result.total,
                    "facets": facets,
                    "rows": rows,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    elif fmt == "csv":
        click.echo(export_csv(rows), nl=False)  # the web app's columns, formulas defused
    else:
        _emit(rows, fmt, ["link_id", "country", "city", "kind", "status", "published", "title"])


def _expanded(text: str) -> str:
    """``text`` with its translations, said on stderr (stdout may be an export)."""
    from pipeline.catalog.fulltext import MAX_TERMS
    from pipeline.catalog.translations import expansion

    expanded = expansion(text)
    click.echo(f"searching for: {expanded.text}", err=True)
    if expanded.skipped:
        left = ", ".join(expanded.skipped)
        click.echo(f"not expanded (a query holds at most {MAX_TERMS} terms): {left}", err=True)
    elif not expanded.expanded:
        click.echo("no translations to add", err=True)
    return expanded.text


def _search_table(rows: list[dict[str, Any]], total: str) -> None:
    """Results with their snippets, matches in bold (archived text is data, never markup)."""
    from pipeline.catalog.fulltext import MARK_END, MARK_START

    if not rows:
        say("No results.")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_lines=False)
    for header in ("Link id", "Place", "Kind", "Status", "Last check", "Published"):
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
                                            _day(row["last_checked_at"]), row["published"])),
            cell,
        )  # fmt: skip
    console.print(table)
    say(f"{len(rows)} of {total} results")


@cli.command()
@capture_target
@click.option("--style", type=click.Choice(CITATION_STYLES), default="apa", show_default=True)
@click.pass_context
def cite(
    ctx: click.Context,
    target: str | None,
    capture_id: int | None,
    at: datetime | None,
    style: str,
) -> None:
    """A citation of a link's last full capture (LINK_ID or URL, --at a time) or of
    --capture ID: its page, the archived copy and the WARC record."""
    from pipeline.catalog.queries import resolve_capture
    from pipeline.citation import citation_facts
    from pipeline.citation import cite as make_citation

    with session_scope(_home(ctx).database_url) as session:
        capture = resolve_capture(session, target, capture_id, at)
        facts = citation_facts(session, capture.id)
    click.echo(make_citation(facts, style))
    if not os.environ.get("LINKARCHIVE_PUBLIC_URL"):
        Console(stderr=True).print(
            f"linkarchive: note: the archived copy is cited at {DEFAULT_PUBLIC_URL}, this "
            "machine's web app; set LINKARCHIVE_PUBLIC_URL to its public address",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip


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


def _day(moment: str | None) -> str:
    return moment[:16].replace("T", " ") if moment else "—"


def _status_table(rows: list[dict[str, Any]]) -> None:
    counts = ("links", "archived", "changed", "failing", "dead", "soft404", "blocked", "error",
              "pending")  # fmt: skip
    cells = [
        [row["country"], row["city"] or "—", *(str(row[k]) for k in counts),
         _day(row["last_check"]), _day(row["last_capture"])]
        for row in rows
    ]  # fmt: skip
    headers = ["Country", "City", "Links", "Arch.", "Chg.", "Fail.", "Dead", "S404", "Blk.",
               "Err.", "Pend.", "Last check", "Last capture"]  # fmt: skip
    _show(_table(headers, cells, title="Links per country and city", numeric=range(2, 11)))


@cli.command()
@click.argument("link_id", type=ID)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    help="json: the link and its captures, whole; csv: one row per capture, with the link.",
)
@click.pass_context
def show(ctx: click.Context, link_id: int, fmt: str) -> None:
    """A link (by its link id) and its captures (each with its capture id)."""
    from pipeline.catalog.queries import link_captures
    from pipeline.linkcheck.standing import check_label, last_check, standing_label

    with session_scope(_home(ctx).database_url) as session:
        link, captures = link_captures(session, link_id)
        place = ", ".join(filter(None, [link.country.name, link.city.name if link.city else None]))
        checked = last_check(session, link.id)
        about = {"link_id": link.id, "country": link.country.name,
                 "city": link.city.name if link.city else None, "kind": link.kind,
                 "label": link.label, "url": link.url,
                 "status": standing_label(link.status, link.failures),
                 "last_check": check_label(checked),
                 "last_checked_at": checked.checked_at.isoformat(timespec="seconds") + "Z"
                 if checked else None,
                 "last_capture_id": link.last_capture_id,
                 "final_url": link.final_url}  # fmt: skip
        rows = [
            {
                "capture_id": c.id,
                "captured_at": c.captured_at.isoformat(timespec="seconds") + "Z",
                "role": c.role or "",
                "http_status": c.http_status,
                "content_type": (c.content_type or "").split(";")[0],
                "bytes": c.size,
                "capture_url": c.url,
                "warc_file": c.warc_file,
                "warc_offset": c.warc_offset,
            }
            for c in captures
        ]
    if fmt == "json":
        click.echo(json.dumps({**about, "captures": rows}, ensure_ascii=False, indent=2))
        return
    if fmt == "csv":
        _emit([{**about, **row} for row in rows], "csv", [*about, "capture_id"])
        return
    say(f"Link {link_id}: {place} — {about['kind']} “{about['label']}”")
    say(f"  url: {about['url']}\n  status: {about['status']}")
    if about["last_check"]:
        say(f"  last check: {about['last_check']} at {about['last_checked_at']}")
    if about["last_capture_id"]:
        say(
            f"  last full capture: capture {about['last_capture_id']} (what get, cite and "
            "evidence export use by default)"
        )
    if about["final_url"] and about["final_url"] != about["url"]:
        say(f"  final url: {about['final_url']}")
    if not rows:
        say("  no captures yet")
        return
    headers = ["Capture id", "Captured at", "Role", "HTTP", "Type", "Bytes", "URL", "WARC"]
    cells = [
        [str(r["capture_id"]), r["captured_at"], r["role"], str(r["http_status"] or ""),
         r["content_type"], str(r["bytes"]), r["capture_url"],
         f"{r['warc_file']}@{r['warc_offset']}"]
        for r in rows
    ]  # fmt: skip
    _show(_table(headers, cells, numeric=[0, 3, 5], flexible=[6, 7]))


@cli.command()
@capture_target
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
    target: str | None,
    capture_id: int | None,
    at: datetime | None,
    output: str,
    reason: str | None,
    requested_by: str | None,
) -> None:
    """Write the archived payload of a link's last full capture (LINK_ID or URL, --at a
    time) or of --capture ID, decoded, to a file ('-' for stdout).

    The retrieval is appended to the capture's custody ledger.
    """
    from pipeline.catalog.queries import resolve_capture
    from pipeline.evidence.custody import current_actor
    from pipeline.retrieval import retrieve_payload

    where = _home(ctx)
    _writable(where, "`get` records each retrieval in the capture's custody ledger")
    with session_scope(where.database_url) as session:
        chosen = resolve_capture(session, target, capture_id, at).id
    got = retrieve_payload(
        where,
        chosen,
        actor=requested_by or current_actor(),
        reason=reason,
        output=output,
    )
    if output != "-":
        say(f"Wrote {len(got.body)} bytes of {got.capture.url} to {output}")
