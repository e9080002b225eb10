"""Re-create the catalog from what the data home keeps: the WARC files (ours, and the
other tools' files that were imported where they lie) and the append-only ledgers beside
them. Everything the catalog knows except user accounts comes back; what cannot is
listed in the report, never dropped silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Table, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from archive.store import WarcStorage
from pipeline.catalog import CatalogError, session_scope
from pipeline.catalog.models import Base, CrawlRun, Link, WarcFile
from pipeline.catalog.runs import finish_run
from pipeline.config import Paths
from pipeline.evidence.restore import restore_ledgers
from pipeline.foreign import restore_imports
from pipeline.indexer import IndexResult, index_files
from pipeline.storage import record_stored

# What a rebuild does not bring back, each for a reason (tests/test_rebuild.py compares a
# rebuilt catalog with its original column by column, these left out).
NOT_RESTORED: dict[str, str] = {
    "users": "user accounts are not archive content",
    "web_sessions": "sign-ins to the web app",
    "crawl_units": "how a run in flight was shared out among workers",
    "search_documents": "derived from links and page metadata: rebuilt from them",
    "search_changes": "the search index's log of changes: a rebuilt catalog's index is new",
    "crawl_runs.*": "runs come back by id, marked rebuilt (their options are not archived)",
    "warc_files.indexed_at": "when this catalog indexed the file",
    "sources.imported_at": "when this catalog merged the source",
}


class RebuildError(ValueError):
    """A rebuild that cannot start (the target catalog is not empty)."""


@dataclass
class RebuildReport:
    """What a rebuild restored, and one line per thing it could not."""

    indexed: IndexResult
    lost: list[str] = field(default_factory=list)


def rebuild_catalog(
    session: Session,
    where: Paths,
    files: list[Path],
    *,
    storage: WarcStorage | None = None,
    fetched: list[Path] | None = None,
    compare_with: str | None = None,
) -> RebuildReport:
    """Fill the empty catalog of ``session`` from ``files`` (the data home's WARC files and
    any fetched from ``storage``), then from the data home's ledgers; with
    ``compare_with`` (the current catalog's URL), report what it has that this has not."""
    if session.scalar(select(func.count(WarcFile.id))) or session.scalar(
        select(func.count(Link.id))
    ):
        raise RebuildError("is not empty; rebuild into an empty database")
    report = RebuildReport(indexed=index_files(session, files))
    report.lost += restore_imports(session, where, report.indexed)  # other tools' files
    if storage is not None and fetched:
        record_stored(session, storage, [p.name for p in fetched])
    for run in session.scalars(select(CrawlRun)):
        finish_run(session, run.id).status = "rebuilt"
    report.lost += restore_ledgers(session, where)  # custody ledgers, verbatim from their files
    if compare_with:
        session.flush()
        report.lost += shortfalls(compare_with, session)
    return report


def restored_tables() -> list[Table]:
    """The catalog tables a rebuild restores (all but those :data:`NOT_RESTORED` whole)."""
    return [t for t in Base.metadata.sorted_tables if t.name not in NOT_RESTORED
            and f"{t.name}.*" not in NOT_RESTORED]  # fmt: skip


def shortfalls(current_url: str, rebuilt: Session) -> list[str]:
    """One line per restored table with fewer rows than in the catalog at ``current_url``:
    what the WARC files and ledgers did not hold (e.g. checks made before they were
    archived, outcomes of units that failed without writing one)."""
    tables = restored_tables()
    try:
        with session_scope(current_url) as current:
            theirs = {t.name: current.scalar(select(func.count()).select_from(t)) for t in tables}
    except (SQLAlchemyError, CatalogError, OSError) as exc:
        return [f"the current catalog could not be read to compare with ({type(exc).__name__})"]
    lines = []
    for table in tables:
        ours = rebuilt.scalar(select(func.count()).select_from(table)) or 0
        if ours < (theirs[table.name] or 0):
            lines.append(
                f"{table.name}: {theirs[table.name] - ours} of the current catalog's "
                f"{theirs[table.name]} rows are not in the WARC files or ledgers"
            )
    return lines
