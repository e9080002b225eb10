"""Which payloads are already archived: the catalog side of deduplication."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import format_warc_date
from pipeline.catalog.models import Capture


@dataclass(frozen=True)
class Original:
    """The record that holds a payload: what a revisit record refers to."""

    record_id: str
    uri: str
    date: str  # its WARC-Date


def find_original(session: Session, payload_sha256: str) -> Original | None:
    """The first archived response with this payload digest, if any."""
    # Columns, not the entity: a crawl asks this for every new payload.
    row = session.execute(
        select(Capture.record_id, Capture.url, Capture.captured_at)
        .where(Capture.payload_sha256 == payload_sha256, Capture.record_type == "response")
        .order_by(Capture.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return Original(row.record_id, row.url, format_warc_date(row.captured_at))
