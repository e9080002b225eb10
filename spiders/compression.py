"""Bounded decompression of the responses the crawl parses.

Replaces Scrapy's ``HttpCompressionMiddleware`` (590), which decompresses every body up to
DOWNLOAD_MAXSIZE and drops the response beyond it: a gzip bomb of a few MB then costs
hundreds of MB per copy, and is not crawled at all. :class:`BoundedDecompressionMiddleware`
decodes only the responses the spider parses (HTML, XHTML, CSS, PDF), at most
``LINKARCHIVE_PARSE_MAXSIZE`` decoded bytes each, incrementally, and keeps that prefix
(flag ``decoded_prefix``) instead of failing. Other bodies (images, media, scripts) stay
as they came, still encoded. The archive never sees any of this: WarcCaptureMiddleware
(950) writes the wire bytes before the response reaches 590.
"""

from __future__ import annotations

import gzip
import io
import logging
import struct
import sys
import zlib
from collections.abc import Callable
from itertools import chain
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured
from scrapy.http import Response, TextResponse
from scrapy.responsetypes import responsetypes

from spiders.wire import DEFAULT_PARSE_MAXSIZE, media_type

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

try:
    import brotli
except ImportError:  # pragma: no cover - Scrapy 2.19 requires one of the two
    try:
        import brotlicffi as brotli
    except ImportError:
        brotli = None
try:
    if sys.version_info >= (3, 14):  # pragma: no cover
        from compression import zstd
    else:
        from backports import zstd
except ImportError:  # pragma: no cover
    zstd = None

__all__ = [
    "ACCEPTED_ENCODINGS",
    "DECODED_PREFIX_FLAG",
    "PARSED_TYPES",
    "BoundedDecompressionMiddleware",
    "decode_prefix",
]

logger = logging.getLogger(__name__)

#: Response flag: the body is the first LINKARCHIVE_PARSE_MAXSIZE decoded bytes, or less.
DECODED_PREFIX_FLAG = "decoded_prefix"
#: Content types the spider parses (pages, stylesheets, PDFs): only these are decoded.
PARSED_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "application/vnd.wap.xhtml+xml",
        "text/css",
        "application/pdf",
        "application/x-pdf",
    }
)
#: What we offer in Accept-Encoding: what we can decode, in Scrapy's order.
ACCEPTED_ENCODINGS: list[bytes] = [
    b"gzip",
    b"deflate",
    *([b"br"] if brotli is not None else []),
    *([b"zstd"] if zstd is not None else []),
]
_CHUNK = 64 * 1024


class _Bounded:
    """Collects decoded chunks up to ``limit`` bytes plus one, to tell a cut from an end."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.out = io.BytesIO()

    @property
    def room(self) -> int:
        """How many more bytes to ask a decoder for (at most one chunk)."""
        return max(min(_CHUNK, self.limit + 1 - self.out.tell()), 0)

    def add(self, data: bytes) -> None:
        self.out.write(data)

    def result(self) -> tuple[bytes, bool]:
        """The decoded prefix and whether there was more than ``limit``."""
        size = self.out.tell()
        if size > self.limit:
            self.out.truncate(self.limit)
        return self.out.getvalue(), size > self.limit


def _read(read1: Callable[[int], bytes], limit: int, errors: tuple[type, ...]) -> _Bounded:
    """Read a decoding file object: up to ``limit + 1`` bytes; a corrupt or cut-off
    stream ends the output (as Scrapy's gunzip does), unless nothing was decoded."""
    sink = _Bounded(limit)
    while sink.room:
        try:
            chunk = read1(sink.room)
        except errors:
            if not sink.out.tell():
                raise
            break
        if not chunk:
            break
        sink.add(chunk)
    return sink


def _gunzip(data: bytes, limit: int) -> _Bounded:
    reader = gzip.GzipFile(fileobj=io.BytesIO(data))
    return _read(reader.read1, limit, (OSError, EOFError, struct.error, zlib.error))


def _inflate(data: bytes, limit: int) -> _Bounded:
    # zlib-wrapped as the standard says, or raw deflate as some servers send it.
    sink = _Bounded(limit)
    try:
        decoder = zlib.decompressobj()
        first = decoder.decompress(data, sink.room)
    except zlib.error:
        decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        first = decoder.decompress(data, sink.room)
    sink.add(first)
    # Output held back by max_length comes from the unconsumed tail (or zlib's window).
    while sink.room and not decoder.eof:
        try:
            chunk = decoder.decompress(decoder.unconsumed_tail, sink.room)
        except zlib.error:
            break
        if not chunk:
            break
        sink.add(chunk)
    return sink


def _unbrotli(data: bytes, limit: int) -> _Bounded:
    sink = _Bounded(limit)
    decoder = brotli.Decompressor()
    try:
        sink.add(decoder.process(data, output_buffer_limit=sink.room))
        while sink.room and not decoder.is_finished():
            chunk = decoder.process(b"", output_buffer_limit=sink.room)
            if not chunk:
                break
            sink.add(chunk)
    except brotli.error:
        if not sink.out.tell():
            raise
    return sink


def _unzstd(data: bytes, limit: int) -> _Bounded:
    reader = zstd.ZstdFile(io.BytesIO(data))
    return _read(reader.read1, limit, (EOFError, zstd.ZstdError))


_DECODERS: dict[bytes, Callable[[bytes, int], _Bounded]] = {
    b"gzip": _gunzip,
    b"x-gzip": _gunzip,
    b"deflate": _inflate,
    **({b"br": _unbrotli} if brotli is not None else {}),
    **({b"zstd": _unzstd} if zstd is not None else {}),
}


def decode_prefix(body: bytes, encoding: bytes, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of ``body`` decoded from ``encoding`` (a Content-Encoding
    token we support), and whether the decoded body was longer.

    Memory stays within about ``limit`` whatever the ratio (a bomb is cut, not expanded).
    A body cut short or corrupt after some output gives what could be decoded; one that
    decodes to nothing raises the decoder's error.
    """
    return _DECODERS[encoding](body, limit).result()


def _split_encodings(values: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(encodings to decode, last applied first; encodings to keep) of Content-Encoding
    values: decoding stops at the first encoding we cannot decode, as in Scrapy."""
    to_keep = [
        token.strip().lower()
        for token in chain.from_iterable(value.split(b",") for value in values)
        if token.strip()
    ]
    to_decode: list[bytes] = []
    while to_keep and to_keep[-1] in _DECODERS:
        to_decode.append(to_keep.pop())
    return to_decode, to_keep


class BoundedDecompressionMiddleware:
    """Decode parsed responses' bodies, at most ``max_size`` decoded bytes each.

    In place of Scrapy's ``HttpCompressionMiddleware`` at 590, with its request side
    (``Accept-Encoding`` of what we decode) and ``COMPRESSION_ENABLED``. Setting:
    ``LINKARCHIVE_PARSE_MAXSIZE`` (the cap, positive; the same one bounds the body the
    download handler keeps, so a compressed body is no longer either).
    """

    def __init__(self, max_size: int, stats: StatsCollector | None = None) -> None:
        if max_size <= 0:
            raise ValueError("LINKARCHIVE_PARSE_MAXSIZE must be positive for decompression")
        self.max_size = max_size
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BoundedDecompressionMiddleware:
        settings = crawler.settings
        if not settings.getbool("COMPRESSION_ENABLED", True):
            raise NotConfigured
        return cls(
            settings.getint("LINKARCHIVE_PARSE_MAXSIZE", DEFAULT_PARSE_MAXSIZE), crawler.stats
        )

    def process_request(self, request: Request) -> None:
        request.headers.setdefault("Accept-Encoding", b", ".join(ACCEPTED_ENCODINGS))

    def process_response(self, request: Request, response: Response) -> Response:
        content_type = response.headers.get("Content-Type")
        if request.method == "HEAD" or media_type(content_type) not in PARSED_TYPES:
            return response
        values = response.headers.getlist("Content-Encoding")
        if not values:
            return response
        to_decode, to_keep = _split_encodings(values)
        if not to_decode:
            return response
        body, cut = response.body, False
        for encoding in to_decode:
            body, more = decode_prefix(body, encoding, self.max_size)
            cut = cut or more
        if to_keep:
            logger.warning(
                "%s: cannot decode %s from %s",
                type(self).__name__,
                response.url,
                b",".join(to_keep).decode("latin-1"),
            )
            response.headers["Content-Encoding"] = to_keep
        else:
            del response.headers["Content-Encoding"]
        if self.stats is not None:
            self.stats.inc_value("httpcompression/response_bytes", len(body))
            self.stats.inc_value("httpcompression/response_count")
            if cut:
                self.stats.inc_value("linkarchive/decoded_prefix_count")
        respcls = responsetypes.from_args(headers=response.headers, url=response.url, body=body)
        kwargs: dict[str, Any] = {"body": body}
        if issubclass(respcls, TextResponse):
            kwargs["encoding"] = None  # recomputed from the decoded body, as Scrapy does
        if cut:
            kwargs["flags"] = [*response.flags, DECODED_PREFIX_FLAG]
        return response.replace(cls=respcls, **kwargs)
