"""The ``linkarchive`` command line: one module per command group (see ``base`` for what
they share).

Every failure the user can cause (a bad source, an unknown city, a bad date) ends in one
readable line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from archive.space import is_disk_full
from pipeline.catalog import CatalogError

# Each module registers its command group on ``cli`` when imported.
from pipeline.cli import admin, cluster, crawling, research, schedules, seeds, warcs  # noqa: F401
from pipeline.cli.base import UserError, cli
from pipeline.seeds import SeedError
from pipeline.users import UsersError

__all__ = ["UserError", "cli", "main"]

# --- entry point ------------------------------------------------------------------------

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    SeedError,
    CatalogError,
    OSError,
    UsersError,
)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from archive import TruncatedWarcError
    from archive.signing import SigningError
    from archive.timestamp import TimestampError
    from flows.deployments import ScheduleError
    from pipeline.catalog.queries import QueryError
    from pipeline.catalog.runs import RunError
    from pipeline.evidence.custody import CustodyError
    from pipeline.evidence.package import EvidenceError
    from pipeline.netpolicy import PolicyError
    from pipeline.retrieval import RetrievalError

    return (
        ScheduleError,
        PolicyError,
        *EXPECTED_ERRORS,
        QueryError,
        RunError,
        EvidenceError,
        RetrievalError,
        SigningError,
        TimestampError,
        TruncatedWarcError,
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
        if is_disk_full(exc):
            return _fail(
                f"the disk is full ({exc}): nothing archived was damaged; free some space, "
                "then run the command again (`linkarchive crawl --resume` for a crawl)",
                1,
            )
        if isinstance(exc, _expected_errors()):
            return _fail(str(exc) or type(exc).__name__, 1)
        if "readonly database" in str(exc) or "read-only" in str(getattr(exc, "orig", "")):
            return _fail(
                "the catalog is read-only: this command writes to it; the read-only "
                "commands (status, search, show, seeds list) still work",
                1,
            )
        if os.environ.get("LINKARCHIVE_DEBUG"):
            raise
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (LINKARCHIVE_DEBUG=1 shows details)", 1
        )
    return 0
