"""``linkarchive seeds``: import curated pages and CSVs, list their links."""

from __future__ import annotations

import click

from pipeline.catalog import session_scope
from pipeline.cli.base import (
    _emit,
    _home,
    _writable,
    cli,
    console,
    say,
)
from pipeline.seeds import DEFAULT_SOURCE


@cli.group()
def seeds() -> None:
    """Import and list curated index pages."""


@seeds.command("import")
@click.argument("source", default=DEFAULT_SOURCE)
@click.pass_context
def seeds_import(ctx: click.Context, source: str) -> None:
    """Import an index page (URL or .html file) or a .csv (country,city,kind,label,url).

    A CSV's bad rows, and a page's links that are no web page (javascript:, mailto:, tel:,
    malformed), are skipped and each is named; the valid ones are imported (exit status 1
    when some were skipped). A link listed twice is imported once. Sources larger than
    LINKARCHIVE_SEED_MAXSIZE (20 MiB) are refused."""
    from pipeline.catalog.importer import import_entries
    from pipeline.seedarchive import archive_import
    from pipeline.seeds import load_source

    where = _home(ctx)
    _writable(where, "an import writes the catalog and archives its source")
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
    if loaded.duplicates:
        shown = ", ".join(loaded.duplicates[:5]) + (", …" if len(loaded.duplicates) > 5 else "")
        say(
            f"{_count(len(loaded.duplicates), loaded.unit, 'duplicate ')} skipped "
            f"(imported once): {shown}"
        )
    for problem in loaded.problems:
        say(f"skipped {problem}")
    if loaded.problems:
        say(
            f"{_count(len(loaded.problems), loaded.unit)} skipped: correct them and import the "
            f"{'file' if loaded.unit == 'rows' else 'page'} again."
        )
        raise click.exceptions.Exit(1)


def _count(number: int, plural: str, adjective: str = "") -> str:
    return f"{number} {adjective}{plural if number != 1 else plural.removesuffix('s')}"


@seeds.command("list")
@click.option("--country", help="Only this country.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def seeds_list(ctx: click.Context, country: str | None, fmt: str) -> None:
    """List the catalog's countries, cities and links."""
    from pipeline.catalog.queries import Selection, select_links
    from pipeline.linkcheck.standing import death_rule, standing_label

    rule = death_rule()
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
                "status": standing_label(link.status, link.failures, rule),
            }
            for link in select_links(session, Selection(country=country))
        ]
    _emit(rows, fmt, ["link_id", "country", "city", "kind", "label", "status", "url"])
