"""Wire capture: the exact bytes of each HTTP/1.1 exchange, teed inside Scrapy's handler.

Scrapy's Response is a reconstruction: Twisted title-cases header names, drops the chunk
framing, the Transfer-Encoding header and the reason phrase. Web archives must record the
exchange as it went over the wire (as Heritrix and warcprox do), so
:class:`WireCaptureDownloadHandler` tees the bytes inside the HTTP/1.1 client protocol,
above TLS: what ``Request.writeTo`` wrote for the request, and every byte the response
parser was fed, from the status line to the end of the body, chunk framing and
content-encoding untouched. After a download ``request.meta[WIRE_META_KEY]`` holds the
:class:`WireExchange` of that attempt.

How the bytes are matched to an attempt: each download gets its own ``Agent`` (Scrapy
builds one per request) whose pool view wraps the connection it hands out, so the Twisted
``Request`` sent on it is tagged with the attempt's :class:`_WireTap`. The connection's
protocol (:class:`_WireHTTP11ClientProtocol`) fills the tap from ``request()`` until the
parser calls ``_finishResponse`` (or the connection ends), minus the bytes the parser did
not consume. Twisted never pipelines, so one keep-alive connection carries one exchange at
a time; a stale pooled connection that Twisted retries on a fresh one (same ``Request``)
restarts the tap there.

Bounded memory, whatever a server sends: the received bytes go to a :class:`WireSpool`,
in memory up to ``SPOOL_MEMORY`` bytes and beyond that in an unlinked temporary file (in
``LINKARCHIVE_WARC_DIR``), from which the WARC record is later streamed.
``LINKARCHIVE_ARCHIVE_MAXSIZE`` caps the bytes of one response: at that many bytes the tap
stops, the parser is fed nothing more, the connection is aborted and the download ends as
a response with what came so far (flag ``truncated``, :attr:`WireExchange.truncated`), in
place of Scrapy's cancellation (which would archive nothing). ``LINKARCHIVE_PARSE_MAXSIZE``
caps what Scrapy's own body buffer keeps (flag ``body_prefix`` when more arrived): the
Response body is for parsing, the archive reads the spool.

Internals relied on (checked with Scrapy 2.19.0 and Twisted 26.10.0):

* Scrapy ``http11``: ``HTTP11DownloadHandler`` (``_pool``, ``_contextFactory``,
  ``_bind_address``, ``_default_maxsize``/``_default_warnsize``, ``_fail_on_dataloss``,
  ``_tls_verbose_logging``), ``_ScrapyAgent._get_agent`` and ``_ScrapyAgent._cb_bodyready``
  (copied in :meth:`_WireScrapyAgent._cb_bodyready`: ``_crawler``, ``_txresponse``,
  ``_cancel``, ``_headers_from_twisted_response``), ``_BindAddressAgent``,
  ``_LenientHTTP11ClientProtocol``/``_LenientHTTP11ClientFactory``; ``_ResponseReader``
  (``dataReceived`` copied in :class:`_WireResponseReader`; its ``_finished``,
  ``_bodybuf``, ``_bytes_received``, ``_maxsize``/``_warnsize``/``_reached_warnsize``,
  ``_request``, ``_crawler``, ``_finish_response(flags=…)``, and its ``connectionLost``
  being the only place a body ends); ``scrapy.utils._download_handlers``
  (``check_stop_download``, ``get_maxsize_msg``, ``get_warnsize_msg``).
* Twisted ``web._newclient``: ``HTTP11ClientProtocol.request``/``dataReceived``/
  ``_finishResponse(rest)``/``connectionLost`` and its ``_state``/``_parser``;
  ``HTTPClientParser.state``/``bodyDecoder``; ``Request.writeTo(transport)`` being the only
  writer of request bytes. ``web.http._IdentityTransferDecoder.contentLength`` (``None``:
  body until close). ``web.client.Agent._requestWithEndpoint`` using only
  ``pool.getConnection`` and ``pool.persistent``, and ``_RetryingHTTP11ClientProtocol``
  re-sending the same ``Request`` object on a new connection. ``Response.deliverBody``
  ending the body protocol with ``connectionLost`` when the connection is aborted.

Not captured (no :class:`WireExchange` in meta; the download itself is unaffected):
requests through a proxy (``meta["proxy"]``: plain-HTTP proxying and CONNECT tunnels; their
body is cut at the archive limit by the reader instead, flag ``truncated``), failed
downloads (timeouts, cancellations by Scrapy's DOWNLOAD_MAXSIZE, data loss with
DOWNLOAD_FAIL_ON_DATALOSS, an archive limit smaller than the response head), and HTTP/2 (a
different handler). Responses to HEAD, 204 and 304 carry no body; interim 1xx responses,
which Twisted skips, stay in the spool ahead of the final response, as they were received.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from io import BytesIO
from typing import IO, TYPE_CHECKING, Any, cast

from scrapy import signals
from scrapy.core.downloader.handlers.http11 import (
    HTTP11DownloadHandler,
    _BindAddressAgent,
    _LenientHTTP11ClientFactory,
    _LenientHTTP11ClientProtocol,
    _ResponseReader,
    _ScrapyAgent,
)
from scrapy.exceptions import DownloadCancelledError, ResponseDataLossError
from scrapy.utils._download_handlers import (
    check_stop_download,
    get_dataloss_msg,
    get_maxsize_msg,
    get_warnsize_msg,
    wrap_twisted_exceptions,
)
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.deprecate import warn_on_deprecated_spider_attribute
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web._newclient import BODY
from twisted.web.http import _IdentityTransferDecoder
from twisted.web.iweb import UNKNOWN_LENGTH

from pipeline.netpolicy import tls_policy
from spiders.netguard import TlsPolicyContextFactory

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.internet.interfaces import IAddress, IStreamClientEndpoint, ITransport
    from twisted.web._newclient import HTTP11ClientProtocol
    from twisted.web._newclient import Request as TxRequest
    from twisted.web.client import Agent, HTTPConnectionPool
    from twisted.web.client import Response as TxResponse
    from twisted.web.iweb import IResponse

logger = logging.getLogger(__name__)

WIRE_META_KEY = "la_wire"
#: Response flag: the response was cut at the archive limit (LINKARCHIVE_ARCHIVE_MAXSIZE).
TRUNCATED_FLAG = "truncated"
#: Response flag: the body holds only the first LINKARCHIVE_PARSE_MAXSIZE bytes received.
BODY_PREFIX_FLAG = "body_prefix"
#: Received bytes kept in memory per exchange; beyond this they go to a temporary file.
SPOOL_MEMORY = 1024 * 1024
#: Body bytes kept for parsing when LINKARCHIVE_PARSE_MAXSIZE is not set (see settings.py).
DEFAULT_PARSE_MAXSIZE = 4 * 1024 * 1024

# Attribute set on the Twisted Request object to carry the attempt's tap to the protocol.
_TAP_ATTR = "_linkarchive_wire_tap"


def media_type(content_type: bytes | str | None) -> str:
    """``text/html`` of ``text/html; charset=utf-8``."""
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return (content_type or "").split(";", 1)[0].strip().lower()


class WireSpool:
    """Bytes received for one response: in memory up to ``memory`` bytes, then in an
    unlinked temporary file in ``directory`` (the system's temporary directory if None)."""

    __slots__ = ("_buffer", "_directory", "_file", "_memory", "_size")

    def __init__(self, memory: int = SPOOL_MEMORY, directory: str | None = None) -> None:
        self._memory = memory
        self._directory = directory
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def spooled(self) -> bool:
        """True once the bytes live in a temporary file."""
        return self._file is not None

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        if self._file is None and self._size + len(data) > self._memory:
            if self._directory:
                os.makedirs(self._directory, exist_ok=True)
            self._file = tempfile.TemporaryFile(  # noqa: SIM115 - closed by close()
                prefix="linkarchive-wire-", dir=self._directory
            )
            self._file.write(self._buffer)
            self._buffer = bytearray()
        if self._file is None:
            self._buffer += data
        else:
            self._file.write(data)
        self._size += len(data)

    def drop_tail(self, count: int) -> None:
        """Forget the last ``count`` bytes."""
        count = min(count, self._size)
        self._size -= count
        if self._file is None:
            del self._buffer[self._size :]
        else:
            self._file.truncate(self._size)
            self._file.seek(self._size)

    def stream(self) -> IO[bytes]:
        """A seekable stream of the bytes, at its first byte; valid until :meth:`close`.

        Spooled bytes are read from the file itself (one reader at a time).
        """
        if self._file is None:
            return BytesIO(self._buffer)
        self._file.flush()
        self._file.seek(0)
        return self._file

    def getvalue(self) -> bytes:
        """All the bytes, in memory (for small responses and tests)."""
        if self._file is None:
            return bytes(self._buffer)
        data = self.stream().read()
        self._file.seek(self._size)
        return data

    def close(self) -> None:
        """Free the memory and delete the file."""
        self._buffer = bytearray()
        self._size = 0
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class WireExchange:
    """One HTTP/1.1 request and its response, byte for byte as they crossed the wire.

    ``complete`` is False if the response did not end as framed; ``truncated`` is True if
    it was cut at the archive limit (then ``complete`` is False too). The response bytes
    are in ``response``; :meth:`close` frees them once they are archived.
    """

    request_bytes: bytes
    response: WireSpool
    peer_ip: str | None
    peer_port: int | None
    complete: bool
    truncated: bool = False

    @property
    def response_bytes(self) -> bytes:
        """The response bytes in memory: for small responses and tests."""
        return self.response.getvalue()

    @property
    def response_size(self) -> int:
        """How many response bytes were received."""
        return len(self.response)

    def response_stream(self) -> IO[bytes]:
        """The response bytes as a seekable stream, at the first byte."""
        return self.response.stream()

    def close(self) -> None:
        """Free the response bytes (memory and temporary file)."""
        self.response.close()


class _WireTap:
    """The raw bytes of one download attempt, filled by the connection carrying it.

    ``conn`` is that connection's protocol; only it may add bytes, and only while
    ``receiving`` for received bytes. Clearing ``conn`` detaches the tap for good.
    ``limit`` (0: none) is the most response bytes kept; the rest is never received.
    """

    __slots__ = (
        "complete",
        "conn",
        "limit",
        "peer_ip",
        "peer_port",
        "received",
        "receiving",
        "sent",
        "spool_dir",
        "truncated",
    )

    def __init__(self, limit: int = 0, spool_dir: str | None = None) -> None:
        self.limit = limit
        self.spool_dir = spool_dir
        self.sent = bytearray()
        self.received = WireSpool(directory=spool_dir)
        self.conn: object | None = None
        self.receiving = False
        self.complete = False
        self.truncated = False
        self.peer_ip: str | None = None
        self.peer_port: int | None = None

    def begin(self, conn: object, peer: IAddress | None) -> None:
        """Start (or, on Twisted's retry over a new connection, restart) the attempt."""
        self.received.close()
        self.sent = bytearray()
        self.received = WireSpool(directory=self.spool_dir)
        self.conn = conn
        self.receiving = True
        self.complete = False
        self.truncated = False
        host = getattr(peer, "host", None)
        port = getattr(peer, "port", None)
        self.peer_ip = host if isinstance(host, str) else None
        self.peer_port = port if isinstance(port, int) else None

    def receive(self, data: bytes) -> int:
        """Keep ``data``, up to the limit; returns how many of its bytes were kept."""
        room = len(data) if not self.limit else self.limit - len(self.received)
        if room < len(data):
            data = data[: max(room, 0)]
        if data:
            self.received.write(data)
        return len(data)

    def cut(self, conn: object) -> None:
        """End the response at the limit: received so far, truncated."""
        if self.conn is conn and self.receiving:
            self.receiving = False
            self.complete = False
            self.truncated = True

    def finish(self, conn: object, *, complete: bool, unread: int = 0) -> None:
        """End the response: ``unread`` trailing bytes were not part of it."""
        if self.conn is not conn or not self.receiving:
            return
        if unread:
            self.received.drop_tail(unread)
        self.receiving = False
        self.complete = complete

    def take(self) -> WireExchange | None:
        """The attempt's exchange (``complete=False`` if the response never ended); detach.

        The exchange owns the received bytes from now on.
        """
        if self.conn is None:
            return None
        exchange = WireExchange(
            request_bytes=bytes(self.sent),
            response=self.received,
            peer_ip=self.peer_ip,
            peer_port=self.peer_port,
            complete=self.complete and not self.receiving,
            truncated=self.truncated,
        )
        self.received = WireSpool(directory=self.spool_dir)
        self.discard()
        return exchange

    def discard(self) -> None:
        """Drop the bytes and detach from the connection."""
        self.sent = bytearray()
        self.received.close()
        self.conn = None
        self.receiving = False


class _TeeTransport:
    """What ``Request.writeTo`` writes to: copies every write into the tap."""

    def __init__(self, transport: ITransport, tap: _WireTap, conn: object) -> None:
        self._transport = transport
        self._tap = tap
        self._conn = conn

    def write(self, data: bytes) -> None:
        if self._tap.conn is self._conn:
            self._tap.sent += data
        self._transport.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        chunks = list(data)
        if self._tap.conn is self._conn:
            for chunk in chunks:
                self._tap.sent += chunk
        self._transport.writeSequence(chunks)

    def __getattr__(self, name: str) -> Any:
        # registerProducer/unregisterProducer and anything else writeTo may use.
        return getattr(self._transport, name)


class _WireHTTP11ClientProtocol(_LenientHTTP11ClientProtocol):
    """Scrapy's lenient HTTP/1.1 client protocol, teeing each tagged exchange."""

    _wire_tap: _WireTap | None = None

    def request(self, request: TxRequest) -> Deferred[IResponse]:
        tap: _WireTap | None = getattr(request, _TAP_ATTR, None)
        if tap is None or self._state != "QUIESCENT" or self.transport is None:
            return super().request(request)
        try:
            peer: IAddress | None = self.transport.getPeer()
        except Exception:  # a transport without a peer address still gets its bytes teed
            peer = None
        tap.begin(self, peer)
        self._wire_tap = tap
        write_to = request.writeTo
        # HTTP11ClientProtocol.request() calls request.writeTo(self.transport) at once; the
        # tee it gets also sees body writes a producer makes later.
        request.writeTo = lambda transport: write_to(_TeeTransport(transport, tap, self))  # type: ignore[method-assign]
        try:
            return super().request(request)
        finally:
            del request.writeTo

    def dataReceived(self, data: bytes) -> None:
        # Kept before the parser sees them: _finishResponse(rest) runs inside this call,
        # and rest is a suffix of what has been received so far.
        tap = self._wire_tap
        if tap is None or tap.conn is not self or not tap.receiving:
            super().dataReceived(data)
            return
        kept = tap.receive(data)
        if kept == len(data):
            super().dataReceived(data)
            return
        # The archive limit: the parser gets what the archive keeps, nothing more. (Had the
        # response ended within it, Twisted would ignore what follows: it never pipelines.)
        super().dataReceived(data[:kept])
        if tap.receiving:  # the response did not end within the limit: cut it here
            self._wire_tap = None
            tap.cut(self)
            transport = self.transport
            if transport is not None:
                getattr(transport, "abortConnection", transport.loseConnection)()

    def _finishResponse(self, rest: bytes) -> None:
        tap = self._wire_tap
        if tap is not None:
            self._wire_tap = None
            tap.finish(self, complete=True, unread=len(rest))
        super()._finishResponse(rest)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        tap = self._wire_tap
        if tap is not None:
            self._wire_tap = None
            tap.finish(self, complete=self._ends_at_close(reason))
        super().connectionLost(reason)

    def _ends_at_close(self, reason: Failure) -> bool:
        """True if the response has no length, so a clean close is its end."""
        parser = self._parser
        if parser is None or parser.state != BODY:
            return False
        decoder = parser.bodyDecoder
        return (
            isinstance(decoder, _IdentityTransferDecoder)
            and decoder.contentLength is None
            and reason.check(ConnectionDone) is not None
        )


class _WireHTTP11ClientFactory(_LenientHTTP11ClientFactory):
    """Builds :class:`_WireHTTP11ClientProtocol` connections for the handler's pool."""

    def buildProtocol(self, addr: IAddress | None) -> HTTP11ClientProtocol:
        return _WireHTTP11ClientProtocol(self._quiescentCallback)  # type: ignore[no-untyped-call]


class _TappedConnection:
    """A pooled connection as one download's Agent sees it: tags the request it sends."""

    def __init__(self, connection: Any, tap: _WireTap) -> None:
        self._connection = connection
        self._tap = tap

    def request(self, request: TxRequest) -> Deferred[IResponse]:
        setattr(request, _TAP_ATTR, self._tap)
        return self._connection.request(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class _TappingPool:
    """The handler's pool as one download's Agent sees it."""

    def __init__(self, pool: HTTPConnectionPool, tap: _WireTap) -> None:
        self._pool = pool
        self._tap = tap

    def getConnection(self, key: Any, endpoint: IStreamClientEndpoint) -> Deferred[Any]:
        d = self._pool.getConnection(key, endpoint)
        return d.addCallback(_TappedConnection, self._tap)

    def __getattr__(self, name: str) -> Any:
        # Agent reads `persistent`.
        return getattr(self._pool, name)


class _WireResponseReader(_ResponseReader):
    """Scrapy's body reader, keeping at most ``keep`` body bytes (0: all) for parsing.

    With a tap, the archive limit is the tap's: when the protocol cuts the response there,
    the body ends as a response flagged ``truncated`` instead of a data loss. Without one
    (a proxied request), ``cut_at`` body bytes (0: none) end the download the same way.
    """

    def __init__(
        self, *args: Any, tap: _WireTap | None, keep: int, cut_at: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._tap = tap
        self._keep = keep
        self._cut_at = cut_at
        self._dropped = 0

    def _finish_response(self, flags: list[str] | None = None, **kwargs: Any) -> None:
        if self._dropped:
            flags = [*(flags or ()), BODY_PREFIX_FLAG]
        super()._finish_response(flags=flags, **kwargs)

    def dataReceived(self, data: bytes) -> None:
        # _ResponseReader.dataReceived (Scrapy 2.19.0), keeping only ``keep`` bytes and
        # cutting (not cancelling) at ``cut_at``.
        if self._finished.called:
            return
        assert self.transport
        room = self._keep - self._bodybuf.tell() if self._keep else len(data)
        if room >= len(data):
            self._bodybuf.write(data)
        else:
            if room > 0:
                self._bodybuf.write(data[:room])
            self._dropped += len(data) - max(room, 0)
        self._bytes_received += len(data)

        if stop_download := check_stop_download(
            signals.bytes_received, self._crawler, self._request, data=data
        ):
            self.transport.stopProducing()
            self.transport.loseConnection()
            self._finish_response(stop_download=stop_download)
            return

        if self._cut_at and self._bytes_received >= self._cut_at:
            self.transport.stopProducing()
            self.transport.loseConnection()
            self._finish_response(flags=[TRUNCATED_FLAG])
            return

        if self._maxsize and self._bytes_received > self._maxsize:
            logger.warning(
                get_maxsize_msg(self._bytes_received, self._maxsize, self._request, expected=False)
            )
            self._bodybuf.truncate(0)
            self._finished.cancel()

        if self._warnsize and self._bytes_received > self._warnsize and not self._reached_warnsize:
            self._reached_warnsize = True
            logger.warning(
                get_warnsize_msg(
                    self._bytes_received, self._warnsize, self._request, expected=False
                )
            )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self._finished.called and self._tap is not None and self._tap.truncated:
            self._finish_response(flags=[TRUNCATED_FLAG])
            return
        super().connectionLost(reason)


class _WireScrapyAgent(_ScrapyAgent):
    """Scrapy's per-download agent, with the pool view that tags the request for ``tap``
    and a body reader that keeps ``keep`` bytes (0: all) and cuts at ``archive_limit``."""

    def __init__(
        self, *, tap: _WireTap | None, keep: int = 0, archive_limit: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._tap = tap
        self._tapping = False
        self._keep = keep
        self._archive_limit = archive_limit

    def _get_agent(self, request: Request, timeout: float) -> Agent:
        agent = super()._get_agent(request, timeout)
        # Proxy agents (plain and CONNECT tunnels) are left alone: no capture.
        if self._tap is not None and type(agent) is _BindAddressAgent:
            agent._pool = _TappingPool(agent._pool, self._tap)
            self._tapping = True
        return agent

    def _cb_bodyready(self, txresponse: TxResponse, request: Request) -> Any:
        # _ScrapyAgent._cb_bodyready (Scrapy 2.19.0), with _WireResponseReader.
        if stop_download := check_stop_download(
            signals.headers_received,
            self._crawler,
            request,
            headers=self._headers_from_twisted_response(txresponse),
            body_length=txresponse.length,
        ):
            txresponse._transport.stopProducing()
            txresponse._transport.loseConnection()
            return {"txresponse": txresponse, "stop_download": stop_download}

        # deliverBody hangs for responses without body
        if cast("int", txresponse.length) == 0:
            return {
                "txresponse": txresponse,
                "certificate": getattr(txresponse, "_scrapy_certificate", None),
                "ip_address": getattr(txresponse, "_scrapy_ip_address", None),
            }

        maxsize = request.meta.get("download_maxsize", self._maxsize)
        warnsize = request.meta.get("download_warnsize", self._warnsize)
        expected_size = (
            cast("int", txresponse.length) if txresponse.length != UNKNOWN_LENGTH else -1
        )
        fail_on_dataloss = request.meta.get("download_fail_on_dataloss", self._fail_on_dataloss)

        if maxsize and expected_size > maxsize:
            warning_msg = get_maxsize_msg(expected_size, maxsize, request, expected=True)
            logger.warning(warning_msg)
            txresponse._transport._producer.abortConnection()
            raise DownloadCancelledError(warning_msg)

        reached_warnsize = bool(warnsize and expected_size > warnsize)
        if reached_warnsize:
            logger.warning(get_warnsize_msg(expected_size, warnsize, request, expected=True))

        tap = self._tap if self._tapping else None
        d: Deferred[Any] = Deferred(partial(self._cancel, txresponse=txresponse))
        txresponse.deliverBody(
            _WireResponseReader(
                finished=d,
                txresponse=txresponse,
                request=request,
                maxsize=maxsize,
                warnsize=warnsize,
                reached_warnsize=reached_warnsize,
                fail_on_dataloss=fail_on_dataloss,
                crawler=self._crawler,
                tls_verbose_logging=self._tls_verbose_logging,
                tap=tap,
                # Without wire bytes, the record is rebuilt from the body: keep all of it.
                keep=self._keep if tap is not None else 0,
                cut_at=self._archive_limit if tap is None else 0,
            )
        )
        self._txresponse = txresponse
        return d


class WireCaptureDownloadHandler(HTTP11DownloadHandler):
    """Scrapy's HTTP/1.1 handler, recording each attempt's exact bytes.

    After a successful download ``request.meta[WIRE_META_KEY]`` is the attempt's
    :class:`WireExchange`. It is absent when the download failed or went through a proxy
    (``meta["proxy"]``: not supported, the request is downloaded uncaptured). ``complete``
    is False for responses Scrapy returns although they did not end as framed (StopDownload,
    DOWNLOAD_FAIL_ON_DATALOSS=False, a length-less body cut by a reset, the archive limit).
    Without the two settings below the Scrapy Response is exactly what
    :class:`HTTP11DownloadHandler` returns.

    Settings: ``LINKARCHIVE_ARCHIVE_MAXSIZE`` (bytes of one response archived; a longer one
    is cut there and returned flagged ``truncated``, the exchange ``truncated``; 0: no
    limit), ``LINKARCHIVE_PARSE_MAXSIZE`` (body bytes kept in the Response for parsing, 4
    MiB if unset; more is flagged ``body_prefix``; 0: all), ``LINKARCHIVE_WARC_DIR`` (where
    big responses spool).
    Scrapy's DOWNLOAD_MAXSIZE still cancels a download, archiving nothing.

    Scrapy copies meta into redirect and retry requests; the handler drops a copied value
    before each download, but a response that never reaches a handler (say, one served
    by HttpCacheMiddleware) would still see its parent's exchange.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._pool._factory = _WireHTTP11ClientFactory
        self._proxy_warned = False
        settings = crawler.settings
        self._contextFactory = TlsPolicyContextFactory(
            self._contextFactory, tls_policy(settings.get("LINKARCHIVE_UNTRUSTED_TLS") or "")
        )
        self._archive_limit = settings.getint("LINKARCHIVE_ARCHIVE_MAXSIZE", 0)
        self._keep = settings.getint("LINKARCHIVE_PARSE_MAXSIZE", DEFAULT_PARSE_MAXSIZE)
        self._spool_dir: str | None = settings.get("LINKARCHIVE_WARC_DIR") or None

    async def download_request(self, request: Request) -> Response:
        """Download ``request``; on success put its :class:`WireExchange` in meta."""
        # Redirect and retry requests copy meta from the request they replace: never let
        # the previous attempt's exchange stand for this one.
        request.meta.pop(WIRE_META_KEY, None)
        tap: _WireTap | None = None
        if not request.meta.get("proxy"):
            tap = _WireTap(self._archive_limit, self._spool_dir)
        elif not self._proxy_warned:
            self._proxy_warned = True
            logger.warning(
                "Wire capture is not supported through proxies: %s and other proxied "
                "requests are downloaded without a WireExchange",
                request.url,
            )
        try:
            response = await self._download(request, tap)
        except BaseException:
            if tap is not None:
                tap.discard()
            raise
        if tap is not None:
            exchange = tap.take()
            if exchange is not None:
                request.meta[WIRE_META_KEY] = exchange
        return response

    async def _download(self, request: Request, tap: _WireTap | None) -> Response:
        # HTTP11DownloadHandler.download_request (Scrapy 2.19.0), with _WireScrapyAgent.
        spider = self._crawler.spider
        if hasattr(spider, "download_maxsize"):  # pragma: no cover
            warn_on_deprecated_spider_attribute("download_maxsize", "DOWNLOAD_MAXSIZE")
        if hasattr(spider, "download_warnsize"):  # pragma: no cover
            warn_on_deprecated_spider_attribute("download_warnsize", "DOWNLOAD_WARNSIZE")
        agent = _WireScrapyAgent(
            tap=tap,
            keep=self._keep,
            archive_limit=self._archive_limit,
            contextFactory=self._contextFactory,
            bindAddress=self._bind_address,
            pool=self._pool,
            maxsize=getattr(spider, "download_maxsize", self._default_maxsize),
            warnsize=getattr(spider, "download_warnsize", self._default_warnsize),
            fail_on_dataloss=self._fail_on_dataloss,
            crawler=self._crawler,
            tls_verbose_logging=self._tls_verbose_logging,
        )
        try:
            with wrap_twisted_exceptions():
                return await maybe_deferred_to_future(agent.download_request(request))
        except ResponseDataLossError:
            if not self._fail_on_dataloss_warned:
                logger.warning(get_dataloss_msg(request.url))
                self._fail_on_dataloss_warned = True
            raise
