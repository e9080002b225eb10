"""Re-create the catalog from what the data home keeps: the WARC files (ours, and the
other tools' files that were imported where they lie) and the append-only ledgers beside
them. Everything the catalog knows except user accounts comes back; what cannot is
listed in the report, never dropped silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.store import WarcStorage
from pipeline.catalog.models import CrawlRun, Link, WarcFile
from pipeline.catalog.runs import finish_run
from pipeline.config import Paths
from pipeline.evidence.restore import restore_ledgers
from pipeline.foreign import restore_imports
from pipeline.indexer import IndexResult, index_files
from pipeline.storage import record_stored


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
) -> RebuildReport:
    """Fill the empty catalog of ``session`` from ``files`` (the data home's WARC files and
    any fetched from ``storage``), then from the data home's ledgers."""
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
    return report
