"""Crawl runs and their units: a run is opened with its planned units, each unit claimed
by one attempt at a time (fenced by owner and heartbeat), the run closed with totals."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from pipeline.catalog.importer import utcnow
from pipeline.catalog.models import Capture, CrawlOutcome, CrawlRun, CrawlUnit, Link
from pipeline.catalog.queries import link_context
from pipeline.progress import run_abandoned
from pipeline.units import host_of, shard_of


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


def add_units(session: Session, run_id: int, units: list[list[dict]]) -> list[CrawlUnit]:
    """Record a run's planned units (numbered from 1): their links and host shards."""
    rows = [
        CrawlUnit(
            run_id=run_id,
            number=number,
            link_ids=[link["link_id"] for link in unit],
            shards=sorted({shard_of(host_of(link["url"])) for link in unit}),
            status="queued",
            attempts=0,
        )
        for number, unit in enumerate(units, start=1)
    ]
    session.add_all(rows)
    session.flush()
    return rows


def unit_of(session: Session, run_id: int, number: int) -> CrawlUnit:
    """The unit ``number`` of run ``run_id``."""
    return session.execute(
        select(CrawlUnit).where(CrawlUnit.run_id == run_id, CrawlUnit.number == number)
    ).scalar_one()


def units_of(session: Session, run_id: int) -> list[CrawlUnit]:
    """A run's units in number order."""
    return list(
        session.scalars(
            select(CrawlUnit).where(CrawlUnit.run_id == run_id).order_by(CrawlUnit.number)
        )
    )


def unit_links(session: Session, unit: CrawlUnit, *, unreached: bool = False) -> list[dict]:
    """The links of ``unit`` as crawl jobs need them; only those without an outcome in the
    run yet with ``unreached``."""
    wanted = set(unit.link_ids)
    if unreached:
        wanted -= reached_links(session, unit.run_id)
    links = session.scalars(select(Link).where(Link.id.in_(sorted(wanted)))).all()
    order = {link_id: i for i, link_id in enumerate(unit.link_ids)}
    return [link_context(link) for link in sorted(links, key=lambda k: order[k.id])]


class UnitTaken(RuntimeError):
    """Another attempt owns this unit now: this one was declared dead and must stop."""


def claim_unit(session: Session, unit: CrawlUnit, owner: str, worker: str) -> None:
    """Make ``owner`` (a flow run id) the unit's attempt: every later heartbeat and commit
    of an earlier owner is refused (:class:`UnitTaken`)."""
    now = utcnow()
    unit.owner, unit.worker, unit.status = owner, worker, "running"
    unit.attempts += 1
    unit.started_at = unit.heartbeat_at = now
    session.flush()


def beat(session: Session, unit_id: int, owner: str) -> None:
    """Renew ``owner``'s hold on a unit; :class:`UnitTaken` if it has been taken over.
    One UPDATE: on PostgreSQL it also orders this commit after a concurrent takeover."""
    done = session.execute(
        update(CrawlUnit)
        .where(CrawlUnit.id == unit_id, CrawlUnit.owner == owner, CrawlUnit.status == "running")
        .values(heartbeat_at=utcnow())
    )
    if done.rowcount != 1:
        raise UnitTaken(f"unit {unit_id} is no longer held by {owner}")


def finish_unit(
    session: Session, unit_id: int, owner: str | None, status: str, result: dict | None = None
) -> None:
    """Close a unit (done or failed) with its result; fenced by ``owner`` when given."""
    if owner is not None:
        beat(session, unit_id, owner)
    unit = session.get_one(CrawlUnit, unit_id)
    unit.status, unit.result, unit.finished_at = status, result, utcnow()
    session.flush()


def active_units(session: Session) -> list[dict]:
    """The units of every run still open: who runs each, and how far it is."""
    rows = session.execute(
        select(CrawlUnit)
        .join(CrawlRun, CrawlRun.id == CrawlUnit.run_id)
        .where(CrawlRun.status == "running")
        .order_by(CrawlUnit.run_id, CrawlUnit.number)
    ).scalars()
    return [
        {
            "run_id": unit.run_id,
            "unit": unit.number,
            "status": unit.status,
            "worker": unit.worker,
            "links": len(unit.link_ids),
            "attempts": unit.attempts,
            "heartbeat": unit.heartbeat_at.isoformat(timespec="seconds") + "Z"
            if unit.heartbeat_at
            else None,
        }
        for unit in rows
    ]


class RunError(ValueError):
    """A run that cannot be resumed (one line)."""


def close_abandoned(session: Session, jobs: Path) -> list[int]:
    """Mark interrupted, so `crawl --resume` can finish them, the runs of this data home
    still marked running whose flow is gone (its liveness lock is free: see
    :func:`pipeline.progress.run_abandoned`); returns their ids. Cluster runs have their
    units' heartbeats instead."""
    closed = []
    for run in session.scalars(select(CrawlRun).where(CrawlRun.status == "running")):
        if (run.selection or {}).get("cluster") or not run_abandoned(jobs, run.id):
            continue
        run.status, run.finished_at = "interrupted", utcnow()
        for unit in units_of(session, run.id):
            if unit.status == "running":
                unit.status = "queued"
        closed.append(run.id)
    session.flush()
    return closed


def interrupted_run(session: Session, run_id: int | None = None) -> CrawlRun:
    """An interrupted crawl run: ``run_id``, else the latest; :class:`RunError` if none."""
    query = select(CrawlRun).where(CrawlRun.status == "interrupted")
    if run_id:
        query = query.where(CrawlRun.id == run_id)
    run = session.scalars(query.order_by(CrawlRun.id.desc()).limit(1)).first()
    if run is None:
        which = f"run {run_id} was not" if run_id else "no crawl run was"
        raise RunError(f"{which} interrupted: nothing to resume")
    return run


def reopen(session: Session, run_id: int | None = None) -> CrawlRun:
    """An interrupted crawl run (see :func:`interrupted_run`), marked running again."""
    run = interrupted_run(session, run_id)
    run.status, run.finished_at = "running", None
    session.flush()
    return run
