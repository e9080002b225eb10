"""Crawl runs: opened before the first crawl unit, closed with totals after the last."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.catalog.importer import utcnow
from pipeline.catalog.models import Capture, CrawlOutcome, CrawlRun, Link


def start_run(
    session: Session, selection: dict, links_total: int, flow_run_id: str | None = None
) -> CrawlRun:
    """Open a crawl run for ``links_total`` selected links."""
    run = CrawlRun(
        started_at=utcnow(),
        status="running",
        selection=selection,
        flow_run_id=flow_run_id,
        links_total=links_total,
    )
    session.add(run)
    session.flush()
    return run


def reached_links(session: Session, run_id: int) -> set[int]:
    """Links that already have an outcome in this run (indexed from closed WARC files)."""
    return set(session.scalars(select(CrawlOutcome.link_id).where(CrawlOutcome.run_id == run_id)))


def record_unreached(session: Session, run_id: int, link_ids: list[int], error: str) -> int:
    """Give an ``error`` outcome to links of the run that got none (their unit failed)."""
    reached = reached_links(session, run_id)
    now = utcnow()
    missing = [link_id for link_id in link_ids if link_id not in reached]
    for link_id in missing:
        session.add(
            CrawlOutcome(
                link_id=link_id, run_id=run_id, status="error", error=error, checked_at=now
            )
        )
        link = session.get(Link, link_id)
        if link is not None:
            link.status, link.updated_at = "error", now
    session.flush()
    return len(missing)


def run_totals(session: Session, run_id: int) -> dict[str, int]:
    """Counts of a run so far: links done and failed, captures and bytes archived."""
    by_status = dict(
        session.execute(
            select(CrawlOutcome.status, func.count(func.distinct(CrawlOutcome.link_id)))
            .where(CrawlOutcome.run_id == run_id)
            .group_by(CrawlOutcome.status)
        ).all()
    )
    stored = func.coalesce(func.sum(Capture.size).filter(Capture.record_type != "revisit"), 0)
    deduplicated = func.coalesce(func.sum(Capture.size).filter(Capture.record_type == "revisit"), 0)
    captures, size, saved = session.execute(
        select(func.count(Capture.id), stored, deduplicated).where(Capture.run_id == run_id)
    ).one()
    return {
        "links_done": sum(by_status.values()),
        "links_failed": by_status.get("error", 0),
        "links_dead": by_status.get("dead", 0),
        "captures": int(captures),
        "bytes_archived": int(size),
        "bytes_deduplicated": int(saved),
    }


def finish_run(session: Session, run_id: int, units_failed: int = 0) -> CrawlRun:
    """Close a run with its totals; ``partial`` when a crawl unit failed for good."""
    run = session.get_one(CrawlRun, run_id)
    totals = run_totals(session, run_id)
    run.links_done = totals["links_done"]
    run.links_failed = totals["links_failed"]
    run.captures = totals["captures"]
    run.bytes_archived = totals["bytes_archived"]
    run.bytes_deduplicated = totals["bytes_deduplicated"]
    run.units_failed = units_failed
    run.finished_at = utcnow()
    run.status = "partial" if units_failed else "finished"
    session.flush()
    return run
