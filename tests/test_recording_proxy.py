"""spiders.browser.proxy: the recording proxy relays and records each exchange byte for byte.

A real client speaks to the proxy over loopback sockets (plain HTTP, and HTTPS through a
CONNECT tunnel), the proxy to tests/wireserver.py, which logs what it read and wrote. What
the proxy records must be exactly what the server read and wrote, and what the client gets
exactly what the server wrote.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
from wireserver import ServedExchange, WireServer, self_signed_tls

from pipeline.netpolicy import TlsPolicy
from spiders.browser.proxy import RecordingProxy
from spiders.wire import WireExchange

# Responses of several framings: length, gzip, chunked, gzip in chunks, an interim 103,
# no body (204, 304), a binary body with CRLFs inside, 300 KB, header case as sent.
PATHS = ["/plain", "/gzip", "/chunked", "/gzip-chunked", "/interim", "/no-content",
         "/not-modified", "/image", "/large", "/mixed-case", "/folded"]  # fmt: skip


class Recorded:
    """What the proxy handed to its recorder: (url, request bytes, response bytes, exchange)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes, bytes, WireExchange]] = []

    def __call__(self, url: str, wire: WireExchange) -> str:
        self.items.append((url, wire.request_bytes, wire.response_bytes, wire))
        wire.close()
        return f"<urn:uuid:{len(self.items):08d}-0000-4000-8000-000000000000>"


async def _fetch(proxy: RecordingProxy, request: bytes, tls_host: str | None = None) -> bytes:
    """Send ``request`` through the proxy (inside a CONNECT tunnel to ``tls_host``); read to
    the end of the connection (the request says ``Connection: close``)."""
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if tls_host:
        writer.write(f"CONNECT {tls_host} HTTP/1.1\r\nHost: {tls_host}\r\n\r\n".encode())
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        client = ssl.create_default_context()
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        await writer.start_tls(client, server_hostname="127.0.0.1")
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return data


def _request(method: str, target: str, host: str) -> bytes:
    return (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Chrome/156 (test)\r\n"
        "Proxy-Connection: keep-alive\r\nAccept-Encoding: gzip, deflate\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def _served(server: WireServer, path: str) -> ServedExchange:
    return next(e for e in server.exchanges if e.path == path)


def test_plain_http_exchanges_are_recorded_and_relayed_byte_for_byte() -> None:
    recorded = Recorded()

    async def run(server: WireServer) -> dict[str, bytes]:
        proxy = await RecordingProxy(recorded).start()
        got = {}
        for path in PATHS:
            got[path] = await _fetch(
                proxy, _request("GET", f"{server.base_url}{path}", f"127.0.0.1:{server.port}")
            )
        got["HEAD"] = await _fetch(
            proxy, _request("HEAD", f"{server.base_url}/plain", f"127.0.0.1:{server.port}")
        )
        await proxy.close()
        return got

    with WireServer() as server:
        got = asyncio.run(run(server))
    *gets, _head = recorded.items
    by_url = {url: (req, resp, wire) for url, req, resp, wire in gets}
    for path in PATHS:
        served = _served(server, path)
        request, response, wire = by_url[f"{server.base_url}{path}"]
        assert response == served.sent, path  # the record holds what the server wrote
        assert got[path] == served.sent, path  # and the browser got the same bytes
        assert request == served.received, path  # the request as the server read it
        assert wire.complete and not wire.truncated
    head_request, head_response, _ = recorded.items[-1][1:]
    assert head_request.startswith(b"HEAD /plain HTTP/1.1\r\n")
    assert head_response[-4:] == b"\r\n\r\n" and got["HEAD"] == head_response
    # Sent in origin form, without the proxy's own headers, and nothing added (no Via).
    first = recorded.items[0][1]
    assert first.startswith(b"GET /plain HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Proxy-Connection" not in first and b"Via:" not in first
    assert first == _request("GET", "/plain", f"127.0.0.1:{server.port}").replace(
        b"Proxy-Connection: keep-alive\r\n", b""
    )


def test_https_through_connect_is_recorded_as_the_site_sent_it(tmp_path: Path) -> None:
    """A self-signed site is refused (its certificate does not verify) and recorded as
    the site sent it once the TLS policy lists it."""
    recorded = Recorded()

    async def run(server: WireServer, tls: TlsPolicy) -> tuple[bytes, list[Any]]:
        proxy = await RecordingProxy(recorded, tls=tls).start()
        host = f"127.0.0.1:{server.port}"
        data = await _fetch(proxy, _request("GET", "/gzip-chunked", host), tls_host=host)
        await proxy.close()
        return data, proxy.exchanges

    with WireServer(tls=self_signed_tls(tmp_path)) as server:
        refused, exchanges = asyncio.run(run(server, TlsPolicy.parse("")))
        assert refused.startswith(b"HTTP/1.1 502") and b"certificate not trusted" in refused
        assert not recorded.items and "LINKARCHIVE_UNTRUSTED_TLS" in exchanges[0].error
        got, _ = asyncio.run(run(server, TlsPolicy.parse(f"127.0.0.1:{server.port}")))
    served = _served(server, "/gzip-chunked")
    [(url, request, response, _)] = recorded.items
    assert url == f"https://127.0.0.1:{server.port}/gzip-chunked"
    assert response == served.sent == got
    assert b"Transfer-Encoding: chunked" in response and b"Content-Encoding: gzip" in response
    assert request == served.received


def test_refused_hosts_get_an_answer_from_the_proxy_and_nothing_is_recorded() -> None:
    recorded = Recorded()

    async def run() -> list[bytes]:
        proxy = await RecordingProxy(recorded, allow=lambda host: host == "127.0.0.1").start()
        answers = [
            await _fetch(proxy, _request("GET", "http://10.1.2.3/secret", "10.1.2.3")),
            # Chromium's own calls home are refused even when every host is allowed.
            await _fetch(
                proxy, _request("GET", "http://update.googleapis.com/x", "update.googleapis.com")
            ),
        ]
        await proxy.close()
        return answers

    answers = asyncio.run(run())
    assert answers[0].startswith(b"HTTP/1.1 403") and b"X-Linkarchive-Proxy: refused" in answers[0]
    assert answers[1].startswith(b"HTTP/1.1 403")
    assert recorded.items == []


def test_a_response_past_the_archive_limit_is_cut_and_marked() -> None:
    recorded = Recorded()

    async def run(server: WireServer) -> None:
        proxy = await RecordingProxy(recorded, max_size=5000).start()
        await _fetch(proxy, _request("GET", f"{server.base_url}/large", "127.0.0.1"))
        await proxy.close()

    with WireServer() as server:
        asyncio.run(run(server))
    [(_, _, response, wire)] = recorded.items
    assert len(response) == 5000
    assert response == _served(server, "/large").sent[:5000]
    assert wire.truncated and not wire.complete


@pytest.mark.parametrize("budget", [1])
def test_a_spent_page_budget_stops_further_fetches(budget: int) -> None:
    recorded = Recorded()

    async def run(server: WireServer) -> list[bytes]:
        proxy = await RecordingProxy(recorded, budget=budget).start()
        first = await _fetch(proxy, _request("GET", f"{server.base_url}/plain", "127.0.0.1"))
        second = await _fetch(proxy, _request("GET", f"{server.base_url}/image", "127.0.0.1"))
        await proxy.close()
        return [first, second]

    with WireServer() as server:
        first, second = asyncio.run(run(server))
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 509")
    assert [url.rsplit("/", 1)[1] for url, *_ in recorded.items] == ["plain"]
