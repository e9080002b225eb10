"""A recording HTTP/1.1 proxy for browser captures: each exchange as it crossed the wire.

Chromium talks to this proxy; the proxy talks to the sites. For every request it sends
upstream it keeps the exact bytes it sent, and for every response the exact bytes the site
wrote (status line, header names, order and case, chunk framing, content-encoding), and
relays those same bytes to the browser. Each finished exchange is handed to ``record`` as a
:class:`~spiders.wire.WireExchange`, the same object the crawler's own tee produces, so both
paths write their records through one function (:meth:`spiders.warcstore.WarcStore.write_wire`).

HTTPS: the browser's ``CONNECT`` tunnel ends here, under a certificate made for this process
(the browser context is told to accept it), and the proxy opens its own TLS connection to
the site. Both sides speak HTTP/1.1 (ALPN): a site that would have spoken HTTP/2 to a
browser is recorded as it answers HTTP/1.1, as warcprox and Heritrix record it.

What it changes on the way, each visible in the request record: the request line is sent in
origin form (``GET /path``), and ``Proxy-Connection``/``Proxy-Authorization`` are not
forwarded. It adds no header (no ``Via``). Upgrades (WebSocket) are refused with a 501 and
not recorded.

Bounded memory whatever a site sends: response bytes go to a :class:`~spiders.wire.WireSpool`
(memory, then an unlinked temporary file), and at ``max_size`` bytes the exchange is cut,
archived with ``WARC-Truncated: length``, and both connections are closed.

This module does not import Scrapy's engine or Playwright: it is an asyncio server that runs
on the crawl's event loop (Scrapy's asyncio reactor).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.netpolicy import (
    AddressPolicy,
    AddressRefused,
    TlsPolicy,
    address_policy,
    tls_policy,
    untrusted_reason,
)
from spiders.wire import WireExchange, WireSpool

logger = logging.getLogger(__name__)

HEAD_LIMIT = 64 * 1024  # the longest request or response head accepted
COPY_SIZE = 64 * 1024
NOT_FORWARDED = {b"proxy-connection", b"proxy-authorization"}

#: Hosts Chromium calls on its own (sign-in, updates, safe browsing, field trials). Never
#: fetched, never recorded: they are the browser's traffic, not the page's.
BROWSER_HOSTS = (
    "accounts.google.com",
    "android.clients.google.com",
    "clients2.google.com",
    "clientservices.googleapis.com",
    "content-autofill.googleapis.com",
    "edgedl.me.gvt1.com",
    "optimizationguide-pa.googleapis.com",
    "redirector.gvt1.com",
    "safebrowsingohttpgateway.googleapis.com",
    "update.googleapis.com",
    "www.googleapis.com",
)


@dataclass(frozen=True)
class Exchange:
    """What the proxy relayed for one request (its bytes are in the WARC by then)."""

    url: str
    method: str
    status: int | None
    content_type: str
    location: str | None
    record_id: str | None
    error: str | None = None


Recorder = Callable[[str, WireExchange], str | None]


class ProxyError(Exception):
    """A request the proxy answers itself (refused host, bad request)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class RecordingProxy:
    """An HTTP/1.1 forward proxy on 127.0.0.1 recording every exchange it relays.

    ``record(url, exchange)`` writes one exchange and returns its response record id;
    ``allow(host)`` says whether a host may be fetched (refused ones get a 403 from the
    proxy, never recorded); so does the address policy (``addresses``, by default from
    ``LINKARCHIVE_ALLOW_ADDRESSES``), after resolution: the proxy connects only to the
    address it checked, and names the refusal in its exchanges. Sites' certificates are
    verified unless the TLS policy (``tls``, by default ``LINKARCHIVE_UNTRUSTED_TLS``)
    lists the site, as in the crawler. ``budget`` caps the
    response bytes of all exchanges together (a page's byte budget): once spent, further
    requests get a 509 from the proxy.
    """

    def __init__(
        self,
        record: Recorder,
        *,
        allow: Callable[[str], bool] = lambda host: True,
        addresses: AddressPolicy | None = None,
        tls: TlsPolicy | None = None,
        max_size: int = 512 << 20,
        budget: int = 0,
        timeout: float = 30.0,
        spool_dir: str | None = None,
    ) -> None:
        self._record = record
        self._allow = allow
        self.addresses = addresses or address_policy()
        self.tls = tls or tls_policy()
        self.max_size = max_size
        self.budget = budget
        self.timeout = timeout
        self.spool_dir = spool_dir
        self.exchanges: list[Exchange] = []
        self.received = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The proxy's address for a browser (``http://127.0.0.1:PORT``)."""
        assert self._server is not None, "start() first"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def start(self) -> RecordingProxy:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0, limit=HEAD_LIMIT)
        return self

    async def close(self) -> None:
        """Stop listening and end every connection still open."""
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        for task in list(self._clients):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def allowed(self, host: str) -> bool:
        """Whether the browser may reach ``host`` through this proxy."""
        host = host.lower().strip("[]")
        return host not in BROWSER_HOSTS and self._allow(host)

    # --- one browser connection ---------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        scheme, authority = "http", ""
        try:
            while True:
                head = await _read_head(reader, self.timeout)
                if head is None:
                    return
                method, target, headers = _parse_request_head(head)
                if method == b"CONNECT":
                    authority = target.decode("latin-1")
                    host, _port = _split_authority(authority, 443)
                    if not self.allowed(host):
                        await _answer(writer, 403, f"{host} is not allowed")
                        return
                    writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    await writer.drain()
                    await writer.start_tls(_server_tls())
                    scheme = "https"
                    continue
                if target.startswith(b"/"):
                    url = f"{scheme}://{authority}{target.decode('latin-1')}"
                else:
                    url = target.decode("latin-1")
                keep_alive = await self._exchange(reader, writer, method, url, headers)
                if not keep_alive:
                    return
        except ProxyError as exc:
            with contextlib.suppress(OSError, RuntimeError):
                await _answer(writer, exc.status, exc.reason)
        except (OSError, EOFError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ValueError):  # fmt: skip
            pass  # the browser went away or sent nonsense: nothing to record
        except asyncio.CancelledError:
            pass  # close(): asyncio's stream callback would report a cancelled task
        finally:
            self._clients.discard(task)
            writer.close()

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: bytes,
        url: str,
        headers: list[tuple[bytes, bytes]],
    ) -> bool:
        """Relay one request and its response; True if the browser connection stays open."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProxyError(400, f"not an http(s) URL: {url[:200]}")
        if not self.allowed(parts.hostname):
            await _read_request_body(reader, headers, self.timeout)  # and drop it
            await _answer(writer, 403, f"{parts.hostname} is not allowed")
            return not _closes(headers)
        if _header(headers, b"upgrade"):
            raise ProxyError(501, "upgrades are not relayed")
        if self.budget and self.received >= self.budget:
            await _read_request_body(reader, headers, self.timeout)  # and drop it
            await _answer(writer, 509, "the page's byte budget is spent")
            return not _closes(headers)
        body = await _read_request_body(reader, headers, self.timeout)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        line = method + b" " + target.encode("latin-1") + b" HTTP/1.1\r\n"
        kept = [(n, v) for n, v in headers if n.lower() not in NOT_FORWARDED]
        request_bytes = line + b"".join(n + b": " + v + b"\r\n" for n, v in kept) + b"\r\n" + body
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(
                    None, self.addresses.resolve, parts.hostname, port
                ),
                self.timeout,
            )
        except AddressRefused as exc:
            self.exchanges.append(Exchange(url, method.decode(), None, "", None, None, str(exc)))
            await _answer(writer, 403, str(exc))
            return not _closes(headers)
        except (OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.exchanges.append(Exchange(url, method.decode(), None, "", None, None, error))
            await _answer(writer, 502, "upstream unreachable")
            return not _closes(headers)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(
                    addresses[0],
                    port,
                    ssl=_client_tls(self.tls.verifies(parts.hostname, port))
                    if parts.scheme == "https"
                    else None,
                    server_hostname=parts.hostname if parts.scheme == "https" else None,
                    limit=HEAD_LIMIT,
                ),
                self.timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            refused = untrusted_reason(exc)
            error = refused or f"{type(exc).__name__}: {exc}"
            self.exchanges.append(Exchange(url, method.decode(), None, "", None, None, error))
            await _answer(writer, 502, refused or "upstream unreachable")
            return not _closes(headers)
        peer = up_writer.get_extra_info("peername")
        spool = WireSpool(directory=self.spool_dir)
        result = _Relay(self, up_reader, writer, spool, method == b"HEAD")
        try:
            up_writer.write(request_bytes)
            await up_writer.drain()
            await result.run()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError,
                asyncio.LimitOverrunError, ssl.SSLError) as exc:  # fmt: skip
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            up_writer.close()
        self.received += len(spool)
        wire = WireExchange(
            request_bytes=request_bytes,
            response=spool,
            peer_ip=peer[0] if peer else None,
            peer_port=peer[1] if peer else None,
            complete=result.complete,
            truncated=result.truncated,
        )
        record_id = None
        if result.status is not None:
            record_id = self._record(url, wire)  # frees the spool
        else:
            spool.close()
        self.exchanges.append(
            Exchange(
                url,
                method.decode("latin-1"),
                result.status,
                result.content_type,
                result.location,
                record_id,
                result.error,
            )
        )
        if result.status is None:
            return False  # nothing reached the browser that it could use; start afresh
        return result.complete and result.keep_alive and not _closes(headers)


class _Relay:
    """Copies one response from the site to the browser, keeping its bytes in a spool."""

    def __init__(
        self,
        proxy: RecordingProxy,
        upstream: asyncio.StreamReader,
        browser: asyncio.StreamWriter,
        spool: WireSpool,
        head_only: bool,
    ) -> None:
        self.proxy, self.upstream, self.browser, self.spool = proxy, upstream, browser, spool
        self.head_only = head_only
        self.status: int | None = None
        self.content_type = ""
        self.location: str | None = None
        self.complete = False
        self.truncated = False
        self.keep_alive = True
        self.error: str | None = None

    async def _send(self, data: bytes) -> None:
        if len(self.spool) + len(data) > self.proxy.max_size:
            data = data[: max(0, self.proxy.max_size - len(self.spool))]
            self.spool.write(data)
            self.truncated = True
            raise _Cut
        self.spool.write(data)
        self.browser.write(data)
        await self.browser.drain()

    async def _read(self, count: int) -> bytes:
        data = await asyncio.wait_for(self.upstream.read(count), self.proxy.timeout)
        if not data:
            raise asyncio.IncompleteReadError(b"", count)
        return data

    async def _copy(self, count: int) -> None:
        while count > 0:
            data = await self._read(min(count, COPY_SIZE))
            count -= len(data)
            await self._send(data)

    async def run(self) -> None:
        """Relay the response: interim 1xx heads, the final head, the body as framed."""
        try:
            while True:
                head = await _read_head(self.upstream, self.proxy.timeout)
                if head is None:
                    raise asyncio.IncompleteReadError(b"", None)
                status, headers = _parse_response_head(head)
                self.status = status
                await self._send(head)
                if not (100 <= status < 200) or status == 101:
                    break
            self.content_type = (_header(headers, b"content-type") or b"").decode("latin-1")
            location = _header(headers, b"location")
            self.location = location.decode("latin-1") if location else None
            connection = (_header(headers, b"connection") or b"").lower()
            self.keep_alive = b"close" not in connection
            if self.head_only or status in (101, 204, 304):
                self.keep_alive = self.keep_alive and status != 101
            elif b"chunked" in (_header(headers, b"transfer-encoding") or b"").lower():
                await self._chunked()
            elif (length := _header(headers, b"content-length")) is not None:
                await self._copy(int(length.split(b",")[0].strip()))
            else:  # delimited by the end of the connection
                self.keep_alive = False
                while data := await asyncio.wait_for(
                    self.upstream.read(COPY_SIZE), self.proxy.timeout
                ):
                    await self._send(data)
            self.complete = True
        except _Cut:
            self.keep_alive = False

    async def _chunked(self) -> None:
        while True:
            line = await asyncio.wait_for(self.upstream.readuntil(b"\n"), self.proxy.timeout)
            await self._send(line)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    trailer = await asyncio.wait_for(
                        self.upstream.readuntil(b"\n"), self.proxy.timeout
                    )
                    await self._send(trailer)
                    if trailer in (b"\r\n", b"\n"):
                        return
            await self._copy(size)
            await self._send(await asyncio.wait_for(
                self.upstream.readexactly(2), self.proxy.timeout
            ))  # fmt: skip


class _Cut(Exception):
    """The response reached the archive limit."""


# --- HTTP/1.1 framing helpers -------------------------------------------------------------
async def _read_head(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """A message head up to and including its blank line; None at a clean end of stream."""
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise


def _split_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding: a continuation
            name, value = headers.pop()
            headers.append((name, value + b" " + line.strip()))
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return lines[0], headers


def _parse_request_head(head: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    first, headers = _split_head(head)
    parts = first.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        raise ProxyError(400, "malformed request line")
    return parts[0], parts[1], headers


def _parse_response_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    first, headers = _split_head(head)
    parts = first.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP status line: {first[:80]!r}")
    return int(parts[1]), headers


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _closes(headers: list[tuple[bytes, bytes]]) -> bool:
    return b"close" in (_header(headers, b"connection") or b"").lower()


async def _read_request_body(
    reader: asyncio.StreamReader, headers: list[tuple[bytes, bytes]], timeout: float
) -> bytes:
    """A request's body as the browser framed it (Content-Length or chunked)."""
    if b"chunked" in (_header(headers, b"transfer-encoding") or b"").lower():
        body = bytearray()
        while True:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout)
            body += line
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                body += await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
                return bytes(body)
            body += await asyncio.wait_for(reader.readexactly(size + 2), timeout)
    length = int(_header(headers, b"content-length") or b"0")
    if length > 64 << 20:
        raise ProxyError(413, "request body too large")
    return await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""


async def _answer(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    """A short plain-text answer from the proxy itself (never recorded)."""
    body = f"linkarchive capture proxy: {reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} {'Forbidden' if status == 403 else 'Proxy Error'}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "X-Linkarchive-Proxy: refused\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) of a CONNECT target."""
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = authority.partition(":")
    return host, int(port) if port.isdigit() else default_port


# --- TLS ----------------------------------------------------------------------------------
@cache
def _server_tls() -> ssl.SSLContext:
    """The TLS identity browsers see inside CONNECT tunnels: a key and self-signed
    certificate made once per process (the browser context accepts it; nothing else does)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "linkarchive capture proxy")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory(prefix="linkarchive-proxy-") as tmp:
        cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert_file, key_file)
    return context


@cache
def _client_tls(verify: bool = True) -> ssl.SSLContext:
    """TLS towards sites, HTTP/1.1 only: certificates verified against the system's trust
    store, or (``verify=False``, a site the TLS policy lists) not checked at all."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context
