"""A loopback HTTP/1.1 server that speaks scripted bytes and records both directions.

Each path has a :class:`Scenario`: the response exactly as it is written to the socket
(status line, header block, body, chunk framing and all), optionally followed by a
deterministic stream too big to script as bytes (:func:`hostile_scenarios`: a gzip bomb, a
body without end, a body of hundreds of MB). The server keeps connections
alive, so one connection may serve several scenarios in turn, and records every exchange:
the request bytes exactly as read and the response bytes exactly as written. Optionally
TLS (the records are then the plaintext inside it). Threaded, port 0, 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gzip
import itertools
import random
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# Responses at /limit have a body of exactly this many bytes; /over-limit one more.
LIMIT = 10_000

HTML = (
    b"<!doctype html><html><head><title>Report</title></head><body>"
    + b"<p>Witness statement, paragraph.</p>" * 40
    + b"</body></html>"
)


@dataclass(frozen=True)
class Scenario:
    """One scripted response.

    ``close``: close the connection after the response. ``segment``: write it in pieces
    of this many bytes, with a pause between. ``stall``: after writing, wait this long
    for the client to hang up. ``drop_next``: read the next request on this connection,
    then close without answering it. ``stream``: pieces written after ``response`` (not
    for HEAD), the same each time it is called; the exchange records only their count.
    ``reset``: after writing, abort the connection with a TCP RST.
    """

    response: bytes
    close: bool = False
    segment: int = 0
    stall: float = 0.0
    drop_next: bool = False
    stream: Callable[[], Iterator[bytes]] | None = None
    reset: bool = False

    @property
    def head(self) -> bytes:
        """The status line and header block, blank line included (what HEAD gets)."""
        for end in (b"\r\n\r\n", b"\n\n"):
            index = self.response.find(end)
            if index >= 0:
                return self.response[: index + len(end)]
        return self.response


@dataclass
class ServedExchange:
    """One request as the server read it and the response it wrote (b"" if dropped)."""

    conn: int
    seq: int
    method: str
    target: str
    received: bytes
    sent: bytes = b""
    streamed: int = 0  # bytes of the scenario's stream written after ``sent``

    @property
    def path(self) -> str:
        """The path of the target, also for an absolute-form target (a proxy request)."""
        return urlsplit(self.target).path or "/"


def response(
    status: str, headers: list[tuple[str, str]], body: bytes = b"", *, length: bool = True
) -> bytes:
    """Bytes of a response: ``status`` like ``"200 OK"``, headers as given, body as is."""
    lines = [f"HTTP/1.1 {status}".encode("latin-1")]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers]
    if length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(
    status: str,
    headers: list[tuple[str, str]],
    chunks: list[bytes],
    *,
    extensions: bool = False,
    trailer: bytes = b"",
) -> bytes:
    """A chunked response: each chunk framed, optional chunk extensions and trailer."""
    head = response(status, [*headers, ("Transfer-Encoding", "chunked")], length=False)
    body = b""
    for i, chunk in enumerate(chunks):
        ext = f';part={i};note="x y"'.encode() if extensions else b""
        body += f"{len(chunk):x}".encode() + ext + b"\r\n" + chunk + b"\r\n"
    return head + body + b"0\r\n" + trailer + b"\r\n"


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def image_bytes() -> bytes:
    """A fake PNG: binary, with NULs, CRLFs and what looks like an HTTP head inside."""
    rng = random.Random(7)
    noise = bytes(rng.randrange(256) for _ in range(3000))
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + noise + b"\r\n\r\nHTTP/1.1 200 OK\r\n" + noise


def scenarios() -> dict[str, Scenario]:
    """Every scripted response, by path."""
    text = [("Content-Type", "text/html; charset=utf-8")]
    gz = gzip.compress(HTML, mtime=0)
    large = bytes(range(256)) * 1200  # 307,200 bytes
    return {
        "/plain": Scenario(response("200 OK", text, HTML)),
        "/gzip": Scenario(response("200 OK", [*text, ("Content-Encoding", "gzip")], gz)),
        "/deflate": Scenario(
            response("200 OK", [*text, ("Content-Encoding", "deflate")], zlib.compress(HTML))
        ),
        "/chunked": Scenario(
            chunked(
                "200 OK",
                text,
                pieces(HTML, 500),
                extensions=True,
                trailer=b"X-Checksum: done\r\n",
            )
        ),
        "/gzip-chunked": Scenario(
            chunked("200 OK", [*text, ("Content-Encoding", "gzip")], pieces(gz, 40))
        ),
        "/cookies": Scenario(
            response(
                "200 OK",
                [
                    ("Content-Type", "text/plain"),
                    ("Set-Cookie", "session=abc123; Path=/; HttpOnly"),
                    ("Set-Cookie", "theme=dark; Path=/"),
                ],
                b"two cookies",
            )
        ),
        "/mixed-case": Scenario(
            b"HTTP/1.1 200 OK\r\nx-CuStOm-Header: Value  With  Spaces\r\n"
            b"content-TYPE: text/plain\r\ncontent-LENGTH: 5\r\n\r\nmixed"
        ),
        "/fine": Scenario(response("200 Everything Is Fine", text, HTML)),
        "/gone-fishing": Scenario(
            response("404 Gone Fishing", [("Content-Type", "text/plain")], b"back soon")
        ),
        "/redirect": Scenario(
            response(
                "301 Moved Permanently",
                [("Location", "/plain?from=redirect"), ("Content-Type", "text/html")],
                b'<a href="/plain?from=redirect">moved</a>',
            )
        ),
        "/redirect-to-truncated": Scenario(
            response("302 Found", [("Location", "/truncated?q=after-redirect")], b"")
        ),
        "/missing": Scenario(
            response("404 Not Found", [("Content-Type", "text/plain")], b"no such page")
        ),
        "/error": Scenario(
            response("500 Internal Server Error", [("Content-Type", "text/plain")], b"oops")
        ),
        "/image": Scenario(response("200 OK", [("Content-Type", "image/png")], image_bytes())),
        "/empty": Scenario(response("200 OK", [("Content-Type", "text/plain")], b"")),
        "/no-content": Scenario(b"HTTP/1.1 204 No Content\r\nX-Note: nothing\r\n\r\n"),
        "/not-modified": Scenario(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'),
        "/limit": Scenario(response("200 OK", [("Content-Type", "text/plain")], b"L" * LIMIT)),
        "/over-limit": Scenario(
            response("200 OK", [("Content-Type", "text/plain")], b"O" * (LIMIT + 1))
        ),
        "/over-limit-chunked": Scenario(
            chunked("200 OK", [("Content-Type", "text/plain")], [b"C" * 4000] * 3)
        ),
        "/close": Scenario(
            response(
                "200 OK",
                [("Content-Type", "text/plain"), ("Connection", "close")],
                b"body until the connection closes",
                length=False,
            ),
            close=True,
        ),
        "/folded": Scenario(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Folded: first\r\n  second\r\n"
            b"Content-Length: 6\r\n\r\nfolded"
        ),
        "/bare-lf": Scenario(
            b"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 7\n\nbare lf"
        ),
        "/trickle": Scenario(response("200 OK", text, HTML[:600]), segment=7),
        "/large": Scenario(
            response("200 OK", [("Content-Type", "application/octet-stream")], large)
        ),
        "/stall": Scenario(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nsome",
            stall=15.0,
        ),
        "/truncated": Scenario(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
            + b"T" * 40,
            close=True,
        ),
        "/drop-next": Scenario(
            response("200 OK", [("Content-Type", "text/plain")], b"armed"), drop_next=True
        ),
        "/interim": Scenario(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            + response("200 OK", [("Content-Type", "text/plain")], b"after the hints")
        ),
        # Five bytes more than Content-Length says: not part of the response.
        "/overrun": Scenario(
            response("200 OK", [("Content-Type", "text/plain")], b"exact") + b"EXTRA", close=True
        ),
        "/echo": Scenario(response("200 OK", [("Content-Type", "text/plain")], b"posted")),
    }


# --- hostile responses --------------------------------------------------------------------

MIB = 1024 * 1024
BOMB_DECODED = 512 * MIB  # what /bomb expands to
BIG_BODY = 300 * MIB  # /big's Content-Length
WHOLE_BODY = 24 * MIB  # /whole: chunked, below the tests' archive limit
PARAGRAPH = b"<p>Witness statement, paragraph.</p>\n"


def _page_head(title: str) -> bytes:
    """The start of a page: its title and one image (a requisite the crawler must find)."""
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body>\n"
        f'<img src="/image?from={title}">\n'
    ).encode()


@functools.cache
def _paragraphs() -> bytes:
    return PARAGRAPH * (MIB // len(PARAGRAPH))


@functools.cache
def _noise() -> bytes:
    """1 MiB (less 3 bytes, so pieces do not align with anything) of seeded random bytes."""
    return random.Random(1993).randbytes(MIB - 3)


@functools.cache
def gzip_bomb() -> bytes:
    """A real gzip bomb: 3.6 MB that decode to 512 MiB of one HTML page."""
    return _bomb(16 + zlib.MAX_WBITS)


@functools.cache
def deflate_bomb() -> bytes:
    """The same page as :func:`gzip_bomb`, as a zlib stream (``Content-Encoding: deflate``)."""
    return _bomb(zlib.MAX_WBITS)


def _bomb(wbits: int) -> bytes:
    out = zlib.compressobj(1, zlib.DEFLATED, wbits)
    head = _page_head("Bomb")
    parts = [out.compress(head)]
    left = BOMB_DECODED - len(head)
    while left:
        piece = _paragraphs()[:left]
        parts.append(out.compress(piece))
        left -= len(piece)
    parts.append(out.flush())
    return b"".join(parts)


def _endless_html() -> Iterator[bytes]:
    yield _page_head("Endless")
    yield from itertools.repeat(_paragraphs())


def _sized(total: int, pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        if total <= 0:
            return
        yield piece[:total]
        total -= len(piece)


def _big_body() -> Iterator[bytes]:
    return _sized(BIG_BODY, itertools.repeat(_noise()))


def _whole_chunked() -> Iterator[bytes]:
    for piece in _sized(WHOLE_BODY, itertools.repeat(_noise())):
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def hostile_scenarios() -> dict[str, Scenario]:
    """Responses no crawl can hold in memory: served with :class:`WireServer`."""
    html = [("Content-Type", "text/html; charset=utf-8")]
    return {
        "/bomb": Scenario(response("200 OK", [*html, ("Content-Encoding", "gzip")], gzip_bomb())),
        # No Content-Length, not chunked: the body ends when the connection does, never.
        "/endless": Scenario(
            response("200 OK", [*html, ("Connection", "close")], length=False),
            close=True,
            stream=_endless_html,
        ),
        "/big": Scenario(
            response(
                "200 OK",
                [("Content-Type", "video/mp4"), ("Content-Length", str(BIG_BODY))],
                length=False,
            ),
            close=True,
            stream=_big_body,
        ),  # fmt: skip
        "/whole": Scenario(
            response(
                "200 OK",
                [("Content-Type", "application/octet-stream"), ("Transfer-Encoding", "chunked")],
                length=False,
            ),
            stream=_whole_chunked,
        ),
    }


def sent_prefix(scenario: Scenario, length: int) -> bytes:
    """The first ``length`` bytes the server writes for ``scenario`` (stream included)."""
    pieces = itertools.chain([scenario.response], scenario.stream() if scenario.stream else [])
    out = bytearray()
    for piece in pieces:
        out += piece[: length - len(out)]
        if len(out) >= length:
            break
    return bytes(out)


NOT_FOUND = Scenario(response("404 Not Found", [("Content-Type", "text/plain")], b"unscripted"))


@dataclass
class _Conn:
    number: int
    sock: socket.socket
    seq: int = 0
    buffer: bytes = b""
    drop_next: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)


class WireServer:
    """Serves :func:`scenarios` on 127.0.0.1 (HTTP, or HTTPS with ``tls``) and records.

    Use as a context manager; :attr:`exchanges` lists every exchange in the order the
    requests were read.
    """

    def __init__(
        self, table: dict[str, Scenario] | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.table = scenarios() if table is None else table
        self.tls = tls
        self.exchanges: list[ServedExchange] = []
        self._lock = threading.Lock()
        self._conns: list[_Conn] = []
        self._closing = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> WireServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, hang up every connection and wait for the threads."""
        self._closing = True
        if self._acceptor.is_alive():
            self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
            conn.sock.close()
        for conn in conns:
            if conn.thread is not None:
                conn.thread.join(5)

    def _accept(self) -> None:
        self._listener.settimeout(0.05)  # closing the socket does not wake accept()
        while not self._closing:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                conn = _Conn(len(self._conns), sock)
                self._conns.append(conn)
            conn.thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            conn.thread.start()

    def _serve(self, conn: _Conn) -> None:
        try:
            if self.tls is not None:
                conn.sock.settimeout(10)
                conn.sock = self.tls.wrap_socket(conn.sock, server_side=True)
                conn.sock.settimeout(None)
            while self._exchange(conn):
                pass
        except (OSError, ssl.SSLError):
            pass
        finally:
            self._hang_up(conn)

    def _hang_up(self, conn: _Conn) -> None:
        sock = conn.sock
        if isinstance(sock, ssl.SSLSocket):
            try:  # close_notify, so the client sees a clean end of the stream
                sock.settimeout(2)
                sock = sock.unwrap()
            except (OSError, ssl.SSLError, ValueError):
                pass
        with contextlib.suppress(OSError):
            sock.close()

    def _read_request(self, conn: _Conn) -> bytes | None:
        while b"\r\n\r\n" not in conn.buffer:
            data = conn.sock.recv(65536)
            if not data:
                return None
            conn.buffer += data
        end = conn.buffer.index(b"\r\n\r\n") + 4
        head = conn.buffer[:end]
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            while not conn.buffer[end:].endswith(b"0\r\n\r\n"):  # enough for our clients
                data = conn.sock.recv(65536)
                if not data:
                    return None
                conn.buffer += data
            size = len(conn.buffer) - end
        else:
            size = int(fields.get(b"content-length", b"0"))
        while len(conn.buffer) < end + size:
            data = conn.sock.recv(65536)
            if not data:
                return None
            conn.buffer += data
        request, conn.buffer = conn.buffer[: end + size], conn.buffer[end + size :]
        return request

    def _exchange(self, conn: _Conn) -> bool:
        """Serve one request; False when the connection is to end."""
        request = self._read_request(conn)
        if request is None:
            return False
        method, target, _ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        served = ServedExchange(conn.number, conn.seq, method, target, request)
        conn.seq += 1
        with self._lock:
            self.exchanges.append(served)
        if conn.drop_next:
            return False
        scenario = self.table.get(served.path, NOT_FOUND)
        data = scenario.head if method == "HEAD" else scenario.response
        if scenario.segment:
            for piece in pieces(data, scenario.segment):
                conn.sock.sendall(piece)
                served.sent += piece
                time.sleep(0.002)
        else:
            conn.sock.sendall(data)
            served.sent = data
        if scenario.stream is not None and method != "HEAD":
            for piece in scenario.stream():
                conn.sock.sendall(piece)  # raises once the client hangs up
                served.streamed += len(piece)
        if scenario.reset:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False  # closing now sends RST, not FIN
        if scenario.stall:
            conn.sock.settimeout(scenario.stall)
            try:
                while conn.sock.recv(65536):
                    pass
            except (OSError, ssl.SSLError):
                pass
            return False
        conn.drop_next = scenario.drop_next
        return not scenario.close


def self_signed_tls(directory: Path) -> ssl.SSLContext:
    """A server TLS context for 127.0.0.1 with a fresh self-signed certificate."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context
