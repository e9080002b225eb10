"""One WARC writer per crawl, shared by the capture middleware and the metadata pipeline."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.statscollectors import StatsCollector
from warcio.recordloader import ArcWarcRecord

from archive import RecordFactory, RotatingWarcWriter, record_id
from archive.records import head_end
from archive.timestamp import TimestampError, stamp_file
from pipeline.catalog.dedup import Original
from pipeline.config import paths
from pipeline.crawlcontext import RUN_FIELD
from spiders.dedup import DedupIndex
from spiders.wire import BODY_PREFIX_FLAG, TRUNCATED_FLAG, WIRE_META_KEY, WireExchange

logger = logging.getLogger(__name__)

# When the wire bytes are not available (a proxy, a handler without capture), records are
# rebuilt from Scrapy's objects (Twisted title-cases names, drops chunk framing and the
# reason phrase): a faithful reconstruction that says so.
CAPTURE_METHOD = {"WARC-Linkarchive-Capture": "reconstructed-from-scrapy-response"}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _final_response(stream: IO[bytes]) -> IO[bytes]:
    """``stream`` positioned at the final response of a wire exchange: interim 1xx
    responses (Twisted skips them: 100 Continue, 103 Early Hints) are not part of the
    response record."""
    start = stream.tell()
    while True:
        first = stream.read(10)
        stream.seek(start)
        if first[:9] not in (b"HTTP/1.1 ", b"HTTP/1.0 ") or first[9:10] != b"1":
            return stream
        try:
            start = head_end(stream)
        except ValueError:
            stream.seek(start)
            return stream


def _header_list(headers: Any) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, values in headers.items():
        for value in values:
            pairs.append((name.decode("latin-1"), value.decode("latin-1")))
    return pairs


def _timestamper(tsa_url: str | None, crawler: Crawler) -> Callable[[Path], None] | None:
    """With a timestamp authority, each WARC file gets an RFC 3161 token when it closes,
    so the time of capture is anchored, not only the time of a later export."""
    if not tsa_url:
        return None

    def stamp(path: Path) -> None:
        try:
            stamp_file(tsa_url, path)
            crawler.stats.inc_value("linkarchive/warc_timestamps")  # type: ignore[union-attr]
        except TimestampError as exc:  # the capture stands; the missing token is reported
            logger.error("no timestamp for %s: %s", path.name, exc)
            crawler.stats.inc_value("linkarchive/warc_timestamp_errors")  # type: ignore[union-attr]

    return stamp


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
                fsync_interval=settings.getfloat("LINKARCHIVE_WARC_FSYNC_INTERVAL", 0.0),
                on_close=_timestamper(settings.get("LINKARCHIVE_TSA_URL"), crawler),
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
        """Archive one request and its response; returns the response's WARC-Record-ID.

        The bytes as they went over the wire when the download handler teed them
        (:mod:`spiders.wire`), streamed from its spool, which is freed afterwards; otherwise
        a reconstruction from Scrapy's objects, marked so. A response cut at the archive
        limit is marked ``WARC-Truncated: length``, one cut short by the server
        ``WARC-Truncated: disconnect``.
        """
        wire: WireExchange | None = request.meta.pop(WIRE_META_KEY, None)
        if wire is not None:
            if wire.peer_ip is None and response.ip_address:
                wire = replace(wire, peer_ip=str(response.ip_address))
            written = self.write_wire(response.url, wire, request_url=request.url)
            if written is not None:
                return written
        response_record, payload_size, build_request = self._reconstructed(request, response)
        return self._write_pair(response_record, payload_size, build_request)

    def write_wire(
        self, url: str, wire: WireExchange, *, request_url: str | None = None
    ) -> str | None:
        """Archive one exchange from its wire bytes (the crawler's tee or the browser's
        recording proxy); returns the response's WARC-Record-ID, or None if the bytes are
        not a whole HTTP request and response head. The spool is freed either way."""
        try:
            records = self._from_wire(url, request_url or url, wire)
            if records is None:
                return None
            written = self._write_pair(*records)
        finally:
            wire.close()
        if wire.truncated and self.stats is not None:
            self.stats.inc_value("linkarchive/truncated_length")
        return written

    def _write_pair(
        self,
        response_record: ArcWarcRecord,
        payload_size: int,
        build_request: Callable[[str], ArcWarcRecord],
    ) -> str:
        response_record = self._deduplicated(response_record, payload_size)
        request_record = build_request(record_id(response_record))
        self.writer.write_many([response_record, request_record])
        return record_id(response_record)

    def _from_wire(
        self, url: str, request_url: str, wire: WireExchange
    ) -> tuple[ArcWarcRecord, int, Callable[[str], ArcWarcRecord]] | None:
        ip = wire.peer_ip
        extra = None
        if wire.truncated:
            extra = {"WARC-Truncated": "length"}
        elif not wire.complete:
            extra = {"WARC-Truncated": "disconnect"}
        if b"\r\n\r\n" not in wire.request_bytes:
            return None  # not a whole HTTP request: fall back to a marked reconstruction
        try:
            raw = _final_response(wire.response_stream())
            record = self.factory.response_from_wire(url, raw, ip=ip, extra=extra)
        except ValueError:
            return None
        payload_size = record.payload_length

        def build_request(concurrent_to: str) -> ArcWarcRecord:
            return self.factory.request_from_wire(
                request_url, wire.request_bytes, ip=ip, concurrent_to=concurrent_to
            )

        return record, payload_size, build_request

    def _reconstructed(
        self, request: Request, response: Response
    ) -> tuple[ArcWarcRecord, int, Callable[[str], ArcWarcRecord]]:
        ip = str(response.ip_address) if response.ip_address else None
        extra = CAPTURE_METHOD
        if TRUNCATED_FLAG in response.flags or BODY_PREFIX_FLAG in response.flags:
            extra = {**CAPTURE_METHOD, "WARC-Truncated": "length"}
        record = self.factory.response(
            response.url,
            response.status,
            _reason(response.status),
            "HTTP/1.1",
            _header_list(response.headers),
            response.body,
            ip=ip,
            extra=extra,
        )
        parts = urlsplit(request.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = _header_list(request.headers)
        if not any(name.lower() == "host" for name, _ in headers):
            headers.insert(0, ("Host", parts.netloc))

        def build_request(concurrent_to: str) -> ArcWarcRecord:
            return self.factory.request(
                request.url,
                request.method,
                target,
                "HTTP/1.1",
                headers,
                request.body,
                ip=ip,
                concurrent_to=concurrent_to,
                extra=CAPTURE_METHOD,
            )

        return record, len(response.body), build_request

    def _deduplicated(self, record: ArcWarcRecord, payload_size: int) -> ArcWarcRecord:
        """``record``, or a revisit record instead when its payload is already archived
        (200 responses only)."""
        if self.dedup is None or record.http_headers is None:
            return record
        if record.http_headers.get_statuscode() != "200":
            return record
        digest = record.rec_headers.get_header("WARC-Payload-Digest")
        sha = digest.split(":", 1)[1]
        original = self.dedup.lookup(sha, payload_size)
        if original is None:
            self.dedup.remember(
                sha,
                Original(
                    record_id(record),
                    record.rec_headers.get_header("WARC-Target-URI"),
                    record.rec_headers.get_header("WARC-Date"),
                ),
            )
            return record
        if self.stats is not None:
            self.stats.inc_value("linkarchive/revisits")
            self.stats.inc_value("linkarchive/bytes_deduplicated", payload_size)
        extra = {
            k: v
            for k, v in record.rec_headers.headers
            if k in ("WARC-Linkarchive-Capture", "WARC-Truncated")
        }
        return self.factory.revisit(
            record.rec_headers.get_header("WARC-Target-URI"),
            record.http_headers.headers_buff,
            payload_digest=digest,
            refers_to=original.record_id,
            refers_to_uri=original.uri,
            refers_to_date=original.date,
            ip=record.rec_headers.get_header("WARC-IP-Address"),
            extra=extra or None,
        )

    def write_context(self, url: str, context: dict[str, Any], refers_to: str | None) -> str:
        """Archive a crawl-context metadata record about ``url``."""
        payload = json.dumps(context, ensure_ascii=False, sort_keys=True).encode("utf-8")
        record = self.factory.metadata(url, payload, refers_to=refers_to)
        self.writer.write(record)
        return record_id(record)

    def close(self) -> list[Path]:
        """Close the open WARC file (and the dedup index's catalog session); returns every
        file this crawl closed."""
        if self.dedup is not None:
            self.dedup.close()
        return self.writer.close()
