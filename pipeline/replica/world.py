"""The offline replica world: one real HTTP/1.1 server per site on 127.0.0.1.

Each site of :data:`content.SITES` gets its own :class:`ThreadingHTTPServer` on a free port,
served from a daemon thread of the current process. Responses are produced by
:func:`content.resolve` and written byte for byte by :class:`_Handler` (so Content-Length,
gzip and chunked framing are exactly what goes on the wire); every response is counted and
recorded per ``(site, path)``.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from pipeline.replica import content


@dataclass(frozen=True)
class RequestRecord:
    """One request a replica server answered."""

    site: str
    method: str
    target: str
    status: int


class _SiteServer(ThreadingHTTPServer):
    """A threading HTTP server for one site that remembers its open connections."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], world: ReplicaWorld, site: str) -> None:
        self.world = world
        self.site = site
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every connection still open (idle keep-alive ones included)."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are normal for a test server; stay quiet.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 30
    server: _SiteServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request logging."""
        return

    def do_GET(self) -> None:  # noqa: N802
        """Serve a GET request."""
        self._serve(head_only=False)

    def do_HEAD(self) -> None:  # noqa: N802
        """Serve a HEAD request (same headers as GET, no body)."""
        self._serve(head_only=True)

    def _serve(self, head_only: bool) -> None:
        site = self.server.site
        world = self.server.world
        target = urlsplit(self.path)
        path = target.path or "/"
        hit = world._count_hit(site, path)
        try:
            resource = world._overrides.get((site, path)) or content.resolve(
                site, path, target.query, hit
            )
        except Exception:  # pragma: no cover - a bug in content must not kill the server
            resource = content.server_error(site)
        record = RequestRecord(site, self.command, self.path, resource.status)
        self._write(
            resource, world.base_urls, head_only, lambda raw: world._record(path, record, raw)
        )

    def _write(
        self,
        resource: content.Resource,
        base_urls: dict[str, str],
        head_only: bool,
        record: Callable[[bytes], None],
    ) -> None:
        """Frame and send ``resource``; ``record`` gets the exact bytes before they are sent
        (so a client that has read the response always finds it in ``ReplicaWorld.sent``)."""
        body = resource.body
        if isinstance(body, str):
            body = content.substitute_sites(body, base_urls).encode(resource.encoding)
        framing = resource.framing
        if framing == "gzip-chunked" and self.request_version != "HTTP/1.1":
            framing = "gzip"
        if framing == "chunked" and self.request_version != "HTTP/1.1":
            framing = "length"  # HTTP/1.0 clients do not understand chunked framing
        headers: list[tuple[str, str]] = [
            ("Server", content.SERVER_HEADERS.get(self.server.site, "nginx")),
            ("Date", formatdate(usegmt=True)),
            ("Content-Type", resource.content_type),
        ]
        if framing == "gzip-chunked":
            framing = "chunked"
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
        elif framing == "gzip":
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
        if framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            headers.append(("Content-Length", str(len(body))))
        headers.append(("Connection", "close" if self.close_connection else "keep-alive"))
        for name, value in resource.headers:
            headers.append((name, content.substitute_sites(value, base_urls)))
        status = HTTPStatus(resource.status)
        head = f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
        pieces = [head.encode("latin-1")]
        if not head_only:
            if framing == "chunked":
                size = max(64, min(1024, len(body) // 3 or 1))
                for start in range(0, len(body), size):
                    chunk = body[start : start + size]
                    pieces.append(f"{len(chunk):x}\r\n".encode("ascii") + chunk + b"\r\n")
                pieces.append(b"0\r\n\r\n")
            else:
                pieces.append(body)
        record(b"".join(pieces))
        try:
            if framing == "chunked" and not head_only:
                self.wfile.write(pieces[0])
                for piece in pieces[1:]:
                    self.wfile.write(piece)
            else:
                self.wfile.write(b"".join(pieces))
            self.wfile.flush()
        except OSError:
            self.close_connection = True


class ReplicaWorld:
    """A small offline web of rally reports: one local HTTP server per site.

    Use as ``with ReplicaWorld() as world: ...`` or ``world = ReplicaWorld().start()`` and
    later ``world.stop()``. Ports are picked by the OS, so several worlds can run at once.
    """

    SITES: tuple[str, ...] = content.SITES

    def __init__(self, host: str = "127.0.0.1") -> None:
        """Prepare (but do not start) a world whose servers will listen on ``host``."""
        self.host = host
        self.base_urls: dict[str, str] = {}
        self._servers: dict[str, _SiteServer] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._hits: Counter[tuple[str, str]] = Counter()
        self._sent: defaultdict[tuple[str, str], list[bytes]] = defaultdict(list)
        self._log: list[RequestRecord] = []
        self._overrides: dict[tuple[str, str], content.Resource] = {}

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> ReplicaWorld:
        """Bind every site to a free port and start serving; returns ``self``."""
        if self._servers:
            return self
        servers: dict[str, _SiteServer] = {}
        try:
            for site in self.SITES:
                servers[site] = _SiteServer((self.host, 0), self, site)
        except BaseException:
            for server in servers.values():
                server.server_close()
            raise
        self._servers = servers
        self.base_urls = {
            site: f"http://{self.host}:{server.server_address[1]}"
            for site, server in servers.items()
        }
        for site, server in servers.items():
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"replica-{site}-{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Shut every server down, close open connections and join the serving threads."""
        servers, threads = self._servers, self._threads
        self._servers, self._threads = {}, []
        for server in servers.values():
            server.shutdown()
        for server in servers.values():
            server.server_close()
            server.close_connections()
        for thread in threads:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        """Whether the servers are up."""
        return bool(self._servers)

    def __enter__(self) -> ReplicaWorld:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ReplicaWorld {state} {self.base_urls.get('index', '')}>"

    # -- URLs ------------------------------------------------------------------------------

    @property
    def index_url(self) -> str:
        """URL of the curated index page (``/ru/news/you-go-girl`` on the index site)."""
        return self.url("index", content.INDEX_PATH)

    def url(self, site: str, path: str) -> str:
        """Absolute URL of ``path`` (may include a query) on ``site``."""
        if site not in self.SITES:
            raise KeyError(f"unknown replica site {site!r}")
        if not self.base_urls:
            raise RuntimeError("ReplicaWorld is not started")
        if not path.startswith("/"):
            path = "/" + path
        return self.base_urls[site] + path

    # -- observation -----------------------------------------------------------------------

    def hits(self, site: str, path: str) -> int:
        """How many requests ``path`` (query ignored) on ``site`` has received."""
        with self._lock:
            return self._hits[(site, path.split("?", 1)[0])]

    def sent(self, site: str, path: str) -> list[bytes]:
        """Raw bytes (status line, headers, framed body) of every response sent for ``path``
        (query ignored) on ``site``, in order."""
        with self._lock:
            return list(self._sent.get((site, path.split("?", 1)[0]), []))

    def requests(self, site: str | None = None) -> list[RequestRecord]:
        """Every request answered so far (optionally only those of one site), in order."""
        with self._lock:
            return [r for r in self._log if site is None or r.site == site]

    def override(self, site: str, path: str, resource: content.Resource | None) -> None:
        """Serve ``resource`` at ``path`` instead of the page (None: the page again), to
        play what happens to links over time: removed, edited, blocked, redirected."""
        with self._lock:
            if resource is None:
                self._overrides.pop((site, path), None)
            else:
                self._overrides[(site, path)] = resource

    def reset(self) -> None:
        """Forget all hit counts, sent responses and request records."""
        with self._lock:
            self._hits.clear()
            self._sent.clear()
            self._log.clear()

    # -- used by the handlers ------------------------------------------------------------

    def _count_hit(self, site: str, path: str) -> int:
        with self._lock:
            self._hits[(site, path)] += 1
            return self._hits[(site, path)]

    def _record(self, path: str, record: RequestRecord, raw: bytes) -> None:
        with self._lock:
            self._sent[(record.site, path)].append(raw)
            self._log.append(record)
