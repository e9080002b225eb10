"""Judge a check run: each link's fresh capture against its last good one.

A check is a crawl of the links' pages alone (so every check is archived: the 404, the
soft-404 page); this module classifies what came back with :mod:`pipeline.linkcheck.classify`,
keeps the history (``link_checks``) and sets each link's status. A link is declared
``dead`` only when :func:`pipeline.linkcheck.classify.confirmed_dead` says so.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import decoded_payload
from pipeline.catalog.models import Capture, CrawlOutcome, CrawlRun, Link, LinkCheck
from pipeline.config import Paths
from pipeline.extract import MAX_PDF_BYTES
from pipeline.linkcheck.classify import DeathRule, Snapshot, classify, confirmed_dead, snapshot
from pipeline.retrieval import RetrievalError, read_stored

FAILED = ("dead", "soft404")


def death_rule() -> DeathRule:
    """N consecutive failed checks over at least a span: from the environment."""
    return DeathRule(
        failures=int(os.environ.get("LINKARCHIVE_DEAD_AFTER_CHECKS", "3")),
        min_span=timedelta(days=float(os.environ.get("LINKARCHIVE_DEAD_AFTER_DAYS", "7"))),
    )


def _body(session: Session, capture: Capture, where: Paths) -> bytes | None:
    """A capture's payload, from this machine's file or the WARC store; None if unreadable."""
    try:
        # Bounded like the indexer's: a check compares text and images, never a bomb's.
        return decoded_payload(read_stored(session, where, capture)[1], limit=MAX_PDF_BYTES)
    except (RetrievalError, OSError, ValueError):
        return None


def _last_good(session: Session, link: Link, before_run: int) -> Capture | None:
    return session.scalar(
        select(Capture)
        .where(
            Capture.link_id == link.id,
            Capture.role == "page",
            Capture.http_status.between(200, 299),
            Capture.run_id < before_run,
        )
        .order_by(Capture.captured_at.desc())
        .limit(1)
    )


def classify_run(session: Session, run_id: int, where: Paths) -> dict[str, list[int]]:
    """Classify every link checked in ``run_id``; returns link ids by status."""
    rule = death_rule()
    run = session.get_one(CrawlRun, run_id)
    by_status: dict[str, list[int]] = {}
    outcomes = session.scalars(
        select(CrawlOutcome).where(CrawlOutcome.run_id == run_id).order_by(CrawlOutcome.id)
    )
    for outcome in outcomes:
        link = session.get_one(Link, outcome.link_id)
        capture = session.get(Capture, outcome.capture_id) if outcome.capture_id else None
        last = _last_good(session, link, run_id)
        previous: Snapshot | None = None
        if last is not None and (old := _body(session, last, where)) is not None:
            previous = snapshot(old, last.url, last.content_type)
        status, change = classify(
            original_url=link.url,
            status=outcome.http_status,
            final_url=outcome.final_url,
            body=_body(session, capture, where) if capture else None,
            content_type=capture.content_type if capture else None,
            error=outcome.error if outcome.http_status is None else None,
            last=previous,
        )
        history = [
            (c.checked_at, c.status)
            for c in session.scalars(select(LinkCheck).where(LinkCheck.link_id == link.id))
        ] + [(outcome.checked_at, status)]
        confirmed = status not in FAILED or confirmed_dead(history, rule)
        session.add(
            LinkCheck(
                link_id=link.id,
                run_id=run_id,
                capture_id=capture.id if capture else None,
                checked_at=outcome.checked_at,
                status=status,
                http_status=outcome.http_status,
                final_url=outcome.final_url,
                change=asdict(change) if change else None,
                confirmed=confirmed,
            )
        )
        if confirmed:
            link.status = status
        else:  # one bad night is not a death: the link keeps its standing until confirmed
            link.status = _standing(session, link, run_id)
        by_status.setdefault(status, []).append(link.id)
    run.selection = {**(run.selection or {}), "mode": "check"}
    session.flush()
    return by_status


def _standing(session: Session, link: Link, run_id: int) -> str:
    """The link's status before this run's failure: its last confirmed check or crawl."""
    check = session.scalar(
        select(LinkCheck.status)
        .where(LinkCheck.link_id == link.id, LinkCheck.confirmed, LinkCheck.run_id != run_id)
        .order_by(LinkCheck.checked_at.desc())
        .limit(1)
    )
    if check:
        return check
    crawl = session.scalar(
        select(CrawlOutcome.status)
        .where(CrawlOutcome.link_id == link.id, CrawlOutcome.run_id < run_id)
        .order_by(CrawlOutcome.checked_at.desc())
        .limit(1)
    )
    return crawl or "pending"
