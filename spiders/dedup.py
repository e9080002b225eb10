"""Deduplication during a crawl: which payloads are already archived, and where."""

from __future__ import annotations

import time
from collections import OrderedDict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.catalog.db import engine_for
from pipeline.catalog.dedup import Original, find_original
from pipeline.catalog.models import Capture


class DigestFilter:
    """A Bloom filter of SHA-256 hex digests: "surely not archived" answered in memory.

    The digests are uniformly random already, so four 32-bit slices of each are its four
    positions. At 16 bits a digest, about 1 in 400 absent digests is reported present
    (the catalog is then asked, and answers no).
    """

    def __init__(self, expected: int) -> None:
        self.size = max(1 << 23, 16 * expected)  # bits; 1 MiB at least
        self.bits = bytearray(self.size // 8 + 1)

    def _positions(self, digest: str) -> list[int]:
        raw = bytes.fromhex(digest[:32])
        return [int.from_bytes(raw[i : i + 4], "big") % self.size for i in range(0, 16, 4)]

    def add(self, digest: str) -> None:
        for pos in self._positions(digest):
            self.bits[pos >> 3] |= 1 << (pos & 7)

    def __contains__(self, digest: str) -> bool:
        return all(self.bits[pos >> 3] & (1 << (pos & 7)) for pos in self._positions(digest))


class DedupIndex:
    """Payload digests already archived: this crawl's recent ones first, then the catalog's.

    A payload found here is written as a ``revisit`` record instead of a second copy. The
    crawl's own digests are remembered up to ``memory`` entries (least recently used
    forgotten first), so a long crawl's memory stays flat; the catalog, which the flow
    fills while the crawl runs, answers for older ones. The catalog is asked only when a
    :class:`DigestFilter` of its digests and of this crawl's says the payload may be there:
    most payloads of a crawl are new, and a query for each would cost a tenth of the
    crawl's CPU. The filter takes in what the catalog indexed since, every ``refresh``
    seconds; a payload another process is archiving at the same moment, not indexed yet,
    is stored again rather than made a revisit: a little space, never a reference to a
    record not yet committed.
    """

    def __init__(
        self,
        database_url: str | None,
        min_size: int = 0,
        memory: int = 50_000,
        refresh: float = 2.0,
    ) -> None:
        self.database_url = database_url
        self.min_size = min_size
        self.memory = memory
        self.refresh = refresh
        self._known_upto = 0  # the highest capture id the filter has taken in
        self._refreshed = 0.0
        self._seen: OrderedDict[str, Original] = OrderedDict()
        self._session: Session | None = None
        self._filter: DigestFilter | None = None

    def lookup(self, payload_sha256: str, size: int) -> Original | None:
        """The record holding this payload, or None (also for payloads under min_size)."""
        if size < self.min_size:
            return None
        found = self._seen.get(payload_sha256)
        if found is not None:
            self._seen.move_to_end(payload_sha256)
            return found
        if self.database_url:
            if self._session is None:
                self._session = Session(engine_for(self.database_url))
                self._filter = DigestFilter(self._capture_count(self._session) + 100_000)
            if time.monotonic() - self._refreshed >= self.refresh:
                self._take_in_new_digests(self._session)
            if self._filter is not None and payload_sha256 not in self._filter:
                return None
            try:
                found = find_original(self._session, payload_sha256)
            finally:
                self._session.rollback()  # end the read: never hold a snapshot open
            if found is not None:
                self.remember(payload_sha256, found)
        return found

    @staticmethod
    def _capture_count(session: Session) -> int:
        return session.scalar(select(func.count(Capture.id))) or 0

    def _take_in_new_digests(self, session: Session) -> None:
        """Add to the filter the digests of responses indexed since the last time."""
        assert self._filter is not None
        query = (
            select(Capture.id, Capture.payload_sha256)
            .where(Capture.record_type == "response", Capture.id > self._known_upto)
            .order_by(Capture.id)
            .execution_options(yield_per=10_000)
        )
        try:
            for capture_id, digest in session.execute(query):
                if digest:
                    self._filter.add(digest)
                self._known_upto = capture_id
        finally:
            session.rollback()
        self._refreshed = time.monotonic()

    def remember(self, payload_sha256: str, original: Original) -> None:
        """Note a payload this crawl has just archived in full."""
        if self._filter is not None:
            self._filter.add(payload_sha256)
        if payload_sha256 not in self._seen:
            self._seen[payload_sha256] = original
            if len(self._seen) > self.memory:
                self._seen.popitem(last=False)

    def close(self) -> None:
        """Release the catalog session."""
        if self._session is not None:
            self._session.close()
            self._session = None
