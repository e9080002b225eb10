"""One WARC writer per crawl, shared by the capture middleware and the metadata pipeline."""

from __future__ import annotations

import json
import socket
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.statscollectors import StatsCollector
from warcio.recordloader import ArcWarcRecord

from archive import RecordFactory, RotatingWarcWriter, record_id
from pipeline.catalog.dedup import Original
from pipeline.config import paths
from pipeline.crawlcontext import RUN_FIELD
from spiders.dedup import DedupIndex

# Scrapy does not keep the bytes of the status line and header block as received
# (Twisted title-cases names and drops chunk framing), so records built here are a
# faithful reconstruction, and say so.
CAPTURE_METHOD = {"WARC-Linkarchive-Capture": "reconstructed-from-scrapy-response"}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _header_list(headers: Any) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, values in headers.items():
        for value in values:
            pairs.append((name.decode("latin-1"), value.decode("latin-1")))
    return pairs


class WarcStore:
    """Writes request/response exchanges and metadata records of one crawl."""

    def __init__(
        self,
        writer: RotatingWarcWriter,
        factory: RecordFactory,
        dedup: DedupIndex | None = None,
        stats: StatsCollector | None = None,
    ) -> None:
        self.writer = writer
        self.factory = factory
        self.dedup = dedup
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WarcStore:
        """The crawl's store, created on first use and closed when the spider closes."""
        store: WarcStore | None = getattr(crawler, "_linkarchive_warc_store", None)
        if store is None:
            settings = crawler.settings
            run_id = settings.get("LINKARCHIVE_RUN_ID")
            fields = {
                "operator": settings.get("LINKARCHIVE_OPERATOR", "linkarchive"),
                "http-header-user-agent": settings.get("USER_AGENT"),
                "robots": "obey" if settings.getbool("ROBOTSTXT_OBEY") else "ignore",
                "isPartOf": "linkarchive",
            }
            if run_id is not None:
                fields[RUN_FIELD] = str(run_id)
            factory = RecordFactory()
            writer = RotatingWarcWriter(
                Path(settings.get("LINKARCHIVE_WARC_DIR")),
                prefix=settings.get("LINKARCHIVE_WARC_PREFIX", "linkarchive"),
                max_size=settings.getint("LINKARCHIVE_WARC_MAX_SIZE", 1_000_000_000),
                warcinfo_fields=fields,
                hostname=socket.gethostname(),
                factory=factory,
                fsync=settings.getbool("LINKARCHIVE_WARC_FSYNC", True),
            )
            dedup = None
            if settings.getbool("LINKARCHIVE_DEDUP", True):
                dedup = DedupIndex(
                    settings.get("LINKARCHIVE_DATABASE_URL") or paths().database_url,
                    settings.getint("LINKARCHIVE_DEDUP_MIN_SIZE", 0),
                )
            store = cls(writer, factory, dedup, crawler.stats)
            crawler._linkarchive_warc_store = store  # type: ignore[attr-defined]
            crawler.signals.connect(store.close, signal=signals.spider_closed)
        return store

    def write_exchange(self, request: Request, response: Response) -> str:
        """Archive one request and its response; returns the response's WARC-Record-ID."""
        ip = str(response.ip_address) if response.ip_address else None
        response_record = self.factory.response(
            response.url,
            response.status,
            _reason(response.status),
            "HTTP/1.1",
            _header_list(response.headers),
            response.body,
            ip=ip,
            extra=CAPTURE_METHOD,
        )
        response_record = self._deduplicated(response, response_record)
        parts = urlsplit(request.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = _header_list(request.headers)
        if not any(name.lower() == "host" for name, _ in headers):
            headers.insert(0, ("Host", parts.netloc))
        request_record = self.factory.request(
            request.url,
            request.method,
            target,
            "HTTP/1.1",
            headers,
            request.body,
            ip=ip,
            concurrent_to=record_id(response_record),
            extra=CAPTURE_METHOD,
        )
        self.writer.write_many([response_record, request_record])
        return record_id(response_record)

    def _deduplicated(self, response: Response, record: ArcWarcRecord) -> ArcWarcRecord:
        """``record``, or a revisit record instead when its payload is already archived."""
        if self.dedup is None or response.status != 200:
            return record
        digest = record.rec_headers.get_header("WARC-Payload-Digest")
        sha = digest.split(":", 1)[1]
        original = self.dedup.lookup(sha, len(response.body))
        if original is None:
            self.dedup.remember(
                sha,
                Original(
                    record_id(record),
                    response.url,
                    record.rec_headers.get_header("WARC-Date"),
                ),
            )
            return record
        if self.stats is not None:
            self.stats.inc_value("linkarchive/revisits")
            self.stats.inc_value("linkarchive/bytes_deduplicated", len(response.body))
        return self.factory.revisit(
            response.url,
            record.http_headers.headers_buff,
            payload_digest=digest,
            refers_to=original.record_id,
            refers_to_uri=original.uri,
            refers_to_date=original.date,
            ip=record.rec_headers.get_header("WARC-IP-Address"),
            extra=CAPTURE_METHOD,
        )

    def write_context(self, url: str, context: dict[str, Any], refers_to: str | None) -> str:
        """Archive a crawl-context metadata record about ``url``."""
        payload = json.dumps(context, ensure_ascii=False, sort_keys=True).encode("utf-8")
        record = self.factory.metadata(url, payload, refers_to=refers_to)
        self.writer.write(record)
        return record_id(record)

    def close(self) -> list[Path]:
        """Close the open WARC file; returns every file this crawl closed."""
        return self.writer.close()
