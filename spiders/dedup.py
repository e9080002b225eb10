"""Deduplication during a crawl: which payloads are already archived, and where."""

from __future__ import annotations

from pipeline.catalog import session_scope
from pipeline.catalog.dedup import Original, find_original


class DedupIndex:
    """Payload digests already archived: this crawl's own first, then the catalog's.

    A payload found here is written as a ``revisit`` record instead of a second copy.
    """

    def __init__(self, database_url: str | None, min_size: int = 0) -> None:
        self.database_url = database_url
        self.min_size = min_size
        self._seen: dict[str, Original] = {}

    def lookup(self, payload_sha256: str, size: int) -> Original | None:
        """The record holding this payload, or None (also for payloads under min_size)."""
        if size < self.min_size:
            return None
        found = self._seen.get(payload_sha256)
        if found is None and self.database_url:
            with session_scope(self.database_url) as session:
                found = find_original(session, payload_sha256)
            if found is not None:
                self._seen[payload_sha256] = found
        return found

    def remember(self, payload_sha256: str, original: Original) -> None:
        """Note a payload this crawl has just archived in full."""
        self._seen.setdefault(payload_sha256, original)
