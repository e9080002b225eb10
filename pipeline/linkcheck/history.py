"""Judge a check run: each link's fresh answer against its last good capture, archived.

A check is a crawl of the links' pages alone (so every check is archived: the 404, the
soft-404 page). :func:`judge_run` classifies what came back with
:func:`pipeline.linkcheck.classify.classify`, comparing it with the last good capture;
:func:`archive_checks` writes each judgement into a WARC file of its own as a
``metadata`` record (format :data:`CHECK_FORMAT`); indexing that file (the indexer
calls :func:`pipeline.linkcheck.standing.apply_check`) adds the ``link_checks`` row and
folds the answer into the link's standing. So the watch's history lives in the WARC
files, and a rebuilt catalog has it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import RecordFactory, RotatingWarcWriter, decoded_payload
from pipeline.catalog.models import Capture, CrawlOutcome, Link
from pipeline.config import Paths
from pipeline.crawlcontext import CHECK_FORMAT, RUN_FIELD
from pipeline.extract import MAX_PDF_BYTES
from pipeline.linkcheck.classify import Snapshot, classify, snapshot
from pipeline.retrieval import RetrievalError, read_stored


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


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds") + "Z"


def judge_run(session: Session, run_id: int, where: Paths) -> list[dict[str, Any]]:
    """The judgement of every link checked in ``run_id``, as check records' payloads."""
    judged = []
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
        judged.append(
            {
                "format": CHECK_FORMAT,
                "version": 1,
                "run_id": run_id,
                "link_id": link.id,
                "url": link.url,
                "checked_at": _iso(outcome.checked_at),
                "status": status,
                "http_status": outcome.http_status,
                "final_url": outcome.final_url,
                "error": outcome.error,
                "capture": capture.record_id if capture else None,
                "compared_with": last.record_id if last is not None and previous else None,
                "change": asdict(change) if change else None,
            }
        )
    return judged


def archive_checks(warcs: Path, run_id: int, judged: list[dict[str, Any]]) -> list[Path]:
    """Write the judgements into a new WARC file in ``warcs`` (one ``metadata`` record
    each, referring to the check's capture); returns the closed file."""
    if not judged:
        return []
    factory = RecordFactory()
    records = [
        factory.metadata(item["url"], item, refers_to=item["capture"] or None) for item in judged
    ]
    fields = {RUN_FIELD: str(run_id), "linkarchive-check": "link-rot watch judgements"}
    with RotatingWarcWriter(
        warcs, prefix="linkarchive-check", factory=factory, warcinfo_fields=fields
    ) as writer:
        writer.write_many(records)
    return list(writer.closed_files)


def by_status(judged: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Link ids by the status their check found."""
    found: dict[str, list[int]] = {}
    for item in judged:
        found.setdefault(item["status"], []).append(item["link_id"])
    return found
