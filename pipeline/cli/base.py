"""What every command shares: the ``cli`` group, the console, one-line errors, tables."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipeline.catalog.models import LINK_STATUSES
from pipeline.config import Paths, paths

STATUSES = LINK_STATUSES
# Ids and counts fit the catalog's 64-bit integers: a larger one is a bad argument (one
# line from click), not an overflow deep in the database driver.
MAX_ID = 2**63 - 1
ID = click.IntRange(1, MAX_ID)

DEMO_MARKER = ".linkarchive-demo"
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


def _writable(where: Paths, why: str) -> None:
    """One line, before any work, when a command that writes meets a read-only data home
    (a read-only mount, an archive copy): the read-only commands still work on it."""
    database = where.database_url
    catalog = Path(database.removeprefix("sqlite:///")) if database.startswith("sqlite:") else None
    for path in (where.home, where.warcs, catalog):
        if path is not None and path.exists() and not os.access(path, os.W_OK):
            raise UserError(f"{path} is read-only: {why}; the read-only commands still work")


def _parse_date(_ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD)", param=param) from None


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


def capture_target(command: Callable) -> Callable:
    """The arguments naming a capture: TARGET (a link id or URL), ``--at``, ``--capture``."""
    for decorator in reversed(
        (
            click.argument("target", required=False),
            click.option("--capture", "capture_id", type=ID, help="This capture (its capture id)."),
            click.option(
                "--at",
                callback=_parse_moment,
                help="The link's full capture closest to this time (UTC), e.g. 2020-10-10.",
            ),
        )
    ):
        command = decorator(command)
    return command


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


def _table(
    headers: list[str],
    cells: list[list[str]],
    *,
    title: str | None = None,
    numeric: Iterable[int] = (),
    flexible: Iterable[int] = (),
) -> Table:
    """A compact table: short columns keep their full width; on a terminal too narrow for
    everything, ``flexible`` ones give way (the narrowest keep theirs, the rest share what
    is left). Piped, nothing is cut (see :func:`_show`)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    numeric, flexible = set(numeric), set(flexible)
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    room = dict.fromkeys(flexible, 10**9)
    if console.is_terminal and flexible:
        left = console.width - sum(w for i, w in enumerate(widths) if i not in flexible)
        left -= 2 * len(headers)
        for count, index in enumerate(sorted(flexible, key=lambda i: widths[i])):
            room[index] = max(12, min(widths[index], left // (len(flexible) - count)))
            left -= room[index]
    for index, header in enumerate(headers):
        width = min(widths[index], room[index]) if index in flexible else widths[index]
        table.add_column(
            header, justify="right" if index in numeric else "left", no_wrap=True, width=width
        )
    for row in cells:
        texts = [Text(cell) for cell in row]  # archived text is data, never markup
        for index in flexible:
            texts[index].truncate(room[index], overflow="ellipsis")
        table.add_row(*texts)
    return table


def _show(table: Table) -> None:
    """Print a table: fitted to a terminal, whole when piped or redirected."""
    if console.is_terminal:
        console.print(table)
        return
    width = console.measure(table, options=console.options.update_width(1_000_000)).maximum
    Console(highlight=False, width=max(width, console.width)).print(table)


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
        if rows:
            _show(_table(headers, cells, flexible=flexible))
        else:
            say("No results.")
