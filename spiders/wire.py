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

Internals relied on (checked with Scrapy 2.19.0 and Twisted 26.10.0):

* Scrapy ``http11``: ``HTTP11DownloadHandler`` (``_pool``, ``_contextFactory``,
  ``_bind_address``, ``_default_maxsize``/``_default_warnsize``, ``_fail_on_dataloss``,
  ``_tls_verbose_logging``), ``_ScrapyAgent._get_agent``, ``_BindAddressAgent``,
  ``_LenientHTTP11ClientProtocol``/``_LenientHTTP11ClientFactory``.
* Twisted ``web._newclient``: ``HTTP11ClientProtocol.request``/``dataReceived``/
  ``_finishResponse(rest)``/``connectionLost`` and its ``_state``/``_parser``;
  ``HTTPClientParser.state``/``bodyDecoder``; ``Request.writeTo(transport)`` being the only
  writer of request bytes. ``web.http._IdentityTransferDecoder.contentLength`` (``None``:
  body until close). ``web.client.Agent._requestWithEndpoint`` using only
  ``pool.getConnection`` and ``pool.persistent``, and ``_RetryingHTTP11ClientProtocol``
  re-sending the same ``Request`` object on a new connection.

Not captured (no :class:`WireExchange` in meta; the download itself is unaffected):
requests through a proxy (``meta["proxy"]``: plain-HTTP proxying and CONNECT tunnels),
failed downloads (timeouts, cancellations, DOWNLOAD_MAXSIZE, data loss with
DOWNLOAD_FAIL_ON_DATALOSS), and HTTP/2 (a different handler). Responses to HEAD, 204 and
304 carry no body; interim 1xx responses, which Twisted skips, stay in ``response_bytes``
ahead of the final response, as they were received.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scrapy.core.downloader.handlers.http11 import (
    HTTP11DownloadHandler,
    _BindAddressAgent,
    _LenientHTTP11ClientFactory,
    _LenientHTTP11ClientProtocol,
    _ScrapyAgent,
)
from scrapy.exceptions import ResponseDataLossError
from scrapy.utils._download_handlers import get_dataloss_msg, wrap_twisted_exceptions
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.deprecate import warn_on_deprecated_spider_attribute
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web._newclient import BODY
from twisted.web.http import _IdentityTransferDecoder

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IAddress, IStreamClientEndpoint, ITransport
    from twisted.web._newclient import HTTP11ClientProtocol
    from twisted.web._newclient import Request as TxRequest
    from twisted.web.client import Agent, HTTPConnectionPool
    from twisted.web.iweb import IResponse

logger = logging.getLogger(__name__)

WIRE_META_KEY = "la_wire"

# Attribute set on the Twisted Request object to carry the attempt's tap to the protocol.
_TAP_ATTR = "_linkarchive_wire_tap"


@dataclass(frozen=True)
class WireExchange:
    """One HTTP/1.1 request and its response, byte for byte as they crossed the wire."""

    request_bytes: bytes
    response_bytes: bytes
    peer_ip: str | None
    peer_port: int | None
    complete: bool


class _WireTap:
    """The raw bytes of one download attempt, filled by the connection carrying it.

    ``conn`` is that connection's protocol; only it may add bytes, and only while
    ``receiving`` for received bytes. Clearing ``conn`` detaches the tap for good.
    """

    __slots__ = ("complete", "conn", "peer_ip", "peer_port", "receiving", "received", "sent")

    def __init__(self) -> None:
        self.sent = bytearray()
        self.received = bytearray()
        self.conn: object | None = None
        self.receiving = False
        self.complete = False
        self.peer_ip: str | None = None
        self.peer_port: int | None = None

    def begin(self, conn: object, peer: IAddress | None) -> None:
        """Start (or, on Twisted's retry over a new connection, restart) the attempt."""
        self.sent = bytearray()
        self.received = bytearray()
        self.conn = conn
        self.receiving = True
        self.complete = False
        host = getattr(peer, "host", None)
        port = getattr(peer, "port", None)
        self.peer_ip = host if isinstance(host, str) else None
        self.peer_port = port if isinstance(port, int) else None

    def finish(self, conn: object, *, complete: bool, unread: int = 0) -> None:
        """End the response: ``unread`` trailing bytes were not part of it."""
        if self.conn is not conn or not self.receiving:
            return
        if unread:
            del self.received[len(self.received) - unread :]
        self.receiving = False
        self.complete = complete

    def take(self) -> WireExchange | None:
        """The attempt's exchange (``complete=False`` if the response never ended); detach."""
        if self.conn is None:
            return None
        exchange = WireExchange(
            request_bytes=bytes(self.sent),
            response_bytes=bytes(self.received),
            peer_ip=self.peer_ip,
            peer_port=self.peer_port,
            complete=self.complete and not self.receiving,
        )
        self.discard()
        return exchange

    def discard(self) -> None:
        """Drop the bytes and detach from the connection."""
        self.sent = bytearray()
        self.received = bytearray()
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
        if tap is not None and tap.conn is self and tap.receiving:
            tap.received += data
        super().dataReceived(data)

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


class _WireScrapyAgent(_ScrapyAgent):
    """Scrapy's per-download agent, with the pool view that tags the request for ``tap``."""

    def __init__(self, *, tap: _WireTap | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tap = tap

    def _get_agent(self, request: Request, timeout: float) -> Agent:
        agent = super()._get_agent(request, timeout)
        # Proxy agents (plain and CONNECT tunnels) are left alone: no capture.
        if self._tap is not None and type(agent) is _BindAddressAgent:
            agent._pool = _TappingPool(agent._pool, self._tap)
        return agent


class WireCaptureDownloadHandler(HTTP11DownloadHandler):
    """Scrapy's HTTP/1.1 handler, recording each attempt's exact bytes.

    After a successful download ``request.meta[WIRE_META_KEY]`` is the attempt's
    :class:`WireExchange`. It is absent when the download failed or went through a proxy
    (``meta["proxy"]``: not supported, the request is downloaded uncaptured). ``complete``
    is False for responses Scrapy returns although they did not end as framed (StopDownload,
    DOWNLOAD_FAIL_ON_DATALOSS=False, a length-less body cut by a reset). The Scrapy
    Response is exactly what :class:`HTTP11DownloadHandler` returns.

    Scrapy copies meta into redirect and retry requests; the handler drops a copied value
    before each download, but a response that never reaches a handler (say, one served
    by HttpCacheMiddleware) would still see its parent's exchange.
    """

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._pool._factory = _WireHTTP11ClientFactory
        self._proxy_warned = False

    async def download_request(self, request: Request) -> Response:
        """Download ``request``; on success put its :class:`WireExchange` in meta."""
        # Redirect and retry requests copy meta from the request they replace: never let
        # the previous attempt's exchange stand for this one.
        request.meta.pop(WIRE_META_KEY, None)
        tap: _WireTap | None = None
        if not request.meta.get("proxy"):
            tap = _WireTap()
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
