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

from archive import RecordFactory, RotatingWarcWriter, record_id
from pipeline.crawlcontext import RUN_FIELD

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

    def __init__(self, writer: RotatingWarcWriter, factory: RecordFactory) -> None:
        self.writer = writer
        self.factory = factory

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
            store = cls(writer, factory)
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

    def write_context(self, url: str, context: dict[str, Any], refers_to: str | None) -> str:
        """Archive a crawl-context metadata record about ``url``."""
        payload = json.dumps(context, ensure_ascii=False, sort_keys=True).encode("utf-8")
        record = self.factory.metadata(url, payload, refers_to=refers_to)
        self.writer.write(record)
        return record_id(record)

    def close(self) -> list[Path]:
        """Close the open WARC file; returns every file this crawl closed."""
        return self.writer.close()
