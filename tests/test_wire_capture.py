"""spiders.wire: real Scrapy crawls through WireCaptureDownloadHandler, checked byte for byte
against what tests/wireserver.py wrote and read.

Each crawl is a subprocess (tests/wirecrawl.py; a Twisted reactor cannot restart), once
with WireCaptureDownloadHandler and once with Scrapy's stock HTTP11DownloadHandler, each
against fresh servers: one serving every scenario at once, one serving a single keep-alive
chain, one over TLS.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from wireserver import LIMIT, ServedExchange, WireServer, scenarios, self_signed_tls

CRAWL = Path(__file__).with_name("wirecrawl.py")

# Served to the all-at-once server, tagged by their name.
SIMPLE = [
    "/plain", "/gzip", "/deflate", "/chunked", "/gzip-chunked", "/cookies", "/mixed-case",
    "/fine", "/gone-fishing", "/missing", "/error", "/image", "/empty", "/no-content",
    "/not-modified", "/close", "/folded", "/bare-lf", "/trickle", "/large", "/interim",
    "/overrun",
]  # fmt: skip
# One keep-alive connection, request after request; /drop-next makes the server drop the
# request after it, which Twisted re-sends on a new connection.
CHAIN = [
    "/plain", "/chunked", "/gzip-chunked", "HEAD /plain", "/no-content", "/not-modified",
    "/empty", "/mixed-case", "/image", "/drop-next", "/fine", "/cookies", "/close",
]  # fmt: skip
# The same over TLS, one request after another on one connection.
TLS_CHAIN = [
    "/plain", "/gzip", "/chunked", "/image", "/large", "/gzip-chunked", "/drop-next", "/fine",
    "/no-content", "/cookies", "/close",
]  # fmt: skip
# Downloads that fail or are not captured: no exchange may stand for them.
FAILING = {
    "timeout": "DownloadTimeoutError",
    "over-limit": "DownloadCancelledError",
    "over-limit-chunked": "DownloadCancelledError",
    "truncated": "ResponseDataLossError",
    "redirect-fail": "ResponseDataLossError",
}


@dataclass
class Run:
    out: dict[str, Any]
    plain: WireServer
    chain: WireServer
    tls: WireServer

    def server(self, url: str) -> WireServer:
        port = urlsplit(url).port
        return next(s for s in (self.plain, self.chain, self.tls) if s.port == port)

    def attempts(self, tag: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self.out["attempts"] if tag is None or a["tag"] == tag]


def _spec(tag: str, base: str, what: str, query: str, **extra: Any) -> dict[str, Any]:
    method, _, path = what.rpartition(" ")
    return {"tag": tag, "url": f"{base}{path}?{query}", "method": method or "GET", **extra}


def _job(plain: WireServer, chain: WireServer, tls: WireServer) -> dict[str, Any]:
    b = plain.base_url
    once = {"dont_retry": True}
    limit = {"download_maxsize": LIMIT, **once}
    requests = [_spec(p.strip("/"), b, p, "q=simple") for p in SIMPLE]
    requests += [
        _spec("head", b, "HEAD /plain", "q=head"),
        _spec(
            "post",
            b,
            "POST /echo",
            "q=post",
            body="a=1&b=caf\xe9",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        _spec("redirect", b, "/redirect", "q=redirect"),
        _spec("limit", b, "/limit", "q=limit", meta=limit),
        _spec("over-limit", b, "/over-limit", "q=over", meta=limit),
        _spec("over-limit-chunked", b, "/over-limit-chunked", "q=over", meta=limit),
        _spec(
            "timeout", b, "/stall", "q=timeout", meta={"download_timeout": 1, "dont_retry": True}
        ),
        _spec("truncated", b, "/truncated", "q=fail", meta=once),
        # The failing request after the redirect inherits the 302's meta.
        _spec("redirect-fail", b, "/redirect-to-truncated", "q=first", meta=once),
        _spec(
            "dataloss-allowed",
            b,
            "/truncated",
            "q=allowed",
            meta={"download_fail_on_dataloss": False},
        ),
        _spec("stop", b, "/large", "q=stop", meta={"stop_download": True}),
        _spec("proxy", b, "/plain", "q=proxy", meta={"proxy": b}),
    ]
    chains = [
        [_spec(f"chain{i}", chain.base_url, p, f"k={i}") for i, p in enumerate(CHAIN)],
        [_spec("tls" + p, tls.base_url, p, f"k={i}") for i, p in enumerate(TLS_CHAIN)],
    ]
    return {"requests": requests, "chains": chains}


def _crawl(handler: str, tmp: Path) -> Run:
    with WireServer() as plain, WireServer() as chain, WireServer(tls=self_signed_tls(tmp)) as tls:
        job = {**_job(plain, chain, tls), "handler": handler, "output": str(tmp / "out.json")}
        (tmp / "job.json").write_text(json.dumps(job))
        proc = subprocess.run(
            [sys.executable, str(CRAWL), str(tmp / "job.json")],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        out = json.loads((tmp / "out.json").read_text())
    return Run(out, plain, chain, tls)


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _crawl("wire", tmp_path_factory.mktemp("wire"))


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _crawl("stock", tmp_path_factory.mktemp("stock"))


def b(text: str) -> bytes:
    return text.encode("latin-1")


def _match(server: WireServer, attempt: dict[str, Any], pool: list[ServedExchange]) -> int:
    """Index into ``server.exchanges`` of the exchange the attempt's capture is; removed
    from ``pool`` so no server exchange stands for two captures."""
    wire = attempt["wire"]
    for served in pool:
        if served.received == b(wire["request"]) and served.sent == b(wire["response"]):
            pool.remove(served)
            return server.exchanges.index(served)
    url = urlsplit(attempt["url"])
    same = [s for s in server.exchanges if s.target == f"{url.path}?{url.query}"]
    raise AssertionError(
        f"{attempt['tag']}: captured bytes match no served exchange\n"
        f"captured: {wire!r}\nserved for that target: {same!r}"
    )


def test_every_capture_is_exactly_what_crossed_the_wire(wire: Run) -> None:
    leftovers: dict[int, list[ServedExchange]] = {}
    for server in (wire.plain, wire.chain, wire.tls):
        pool = list(server.exchanges)
        for attempt in wire.attempts():
            if (
                attempt["wire"]
                and attempt["tag"] not in ("stop", "overrun")
                and wire.server(attempt["url"]) is server
            ):
                _match(server, attempt, pool)
        leftovers[server.port] = pool
    # What is left was never captured whole: failed downloads, the proxied one, the stopped
    # one, the one followed by bytes it does not own (see test_partial_and_limit_responses)
    # and the requests the server dropped (sent nothing) that Twisted re-sent.
    assert sorted(s.target for s in leftovers[wire.plain.port]) == sorted(
        [
            "/stall?q=timeout",
            "/over-limit?q=over",
            "/over-limit-chunked?q=over",
            "/truncated?q=fail",
            "/truncated?q=after-redirect",
            "/large?q=stop",
            "/overrun?q=simple",
            f"{wire.plain.base_url}/plain?q=proxy",
        ]
    )
    for port in (wire.chain.port, wire.tls.port):
        assert [(s.path, s.sent) for s in leftovers[port]] == [("/fine", b"")]
    assert len(wire.attempts()) >= len(SIMPLE + CHAIN + TLS_CHAIN)


def test_every_response_has_its_capture_and_every_failure_none(wire: Run) -> None:
    for attempt in wire.attempts():
        if attempt["tag"] == "proxy":
            assert attempt["wire"] is None and attempt["status"] == 200
        elif "exception" in attempt:
            assert attempt["wire"] is None, attempt
            assert FAILING[attempt["tag"]] == attempt["exception"]
        else:
            capture = attempt["wire"]
            assert capture is not None, attempt
            assert capture["peer_ip"] == "127.0.0.1" == attempt["ip"]
            assert capture["peer_port"] == urlsplit(attempt["url"]).port
            partial = attempt["tag"] in ("stop", "dataloss-allowed")
            assert capture["complete"] is not partial, attempt["tag"]
    failed = {a["tag"]: a["failure"] for a in wire.out["final"] if "failure" in a}
    assert failed == FAILING
    assert wire.out["leaked_taps"] == 0


def _comparable(run: Run) -> dict[str, list[dict[str, Any]]]:
    """Attempts and spider responses by tag, without captures and ports."""
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for kind in ("attempts", "final"):
        for record in run.out[kind]:
            record = {k: v for k, v in record.items() if k not in ("wire", "request")}
            if "url" in record:
                record["url"] = urlsplit(record["url"])._replace(netloc="").geturl()
            if record["tag"] == "stop":
                record.pop("body", None)  # as much as arrived before the stop
            seen[f"{kind}:{record['tag']}"].append(record)
    return seen


def test_scrapy_responses_are_those_of_the_stock_handler(wire: Run, stock: Run) -> None:
    assert _comparable(wire) == _comparable(stock)
    assert all(a["wire"] is None for a in stock.attempts())
    assert [a["flags"] for a in wire.attempts("close")] == [["partial"]]


def test_one_keep_alive_connection_is_split_per_exchange(wire: Run) -> None:
    server = wire.chain
    served = [(s.conn, s.seq, s.method, s.target) for s in server.exchanges]
    drop = CHAIN.index("/drop-next") + 1
    expected = []
    for i, what in enumerate(CHAIN):
        method, _, path = what.rpartition(" ")
        conn, seq = (0, i) if i <= drop else (1, i - drop)
        expected.append((conn, seq, method or "GET", f"{path}?k={i}"))
    expected.insert(drop + 1, (1, 0, "GET", f"/fine?k={drop}"))
    assert served == expected
    # Each capture is its own exchange, in order; the re-sent one is the second sending.
    pool = list(server.exchanges)
    matched = [_match(server, a, pool) for a in wire.attempts() if a["tag"].startswith("chain")]
    assert matched == [i for i in range(len(expected)) if i != drop]
    # Over TLS too: the chain is split the same way, on two connections.
    assert [(s.conn, s.path) for s in wire.tls.exchanges if s.conn == 1] == [
        (1, p) for p in TLS_CHAIN[TLS_CHAIN.index("/fine") :]
    ]
    head = wire.attempts("chain3")[0]["wire"]
    assert head["request"].startswith("HEAD /plain?k=3 HTTP/1.1\r\n")
    assert b(head["response"]) == scenarios()["/plain"].head


def test_redirects_and_retries_get_one_capture_per_attempt(wire: Run) -> None:
    first, second = wire.attempts("redirect")
    assert first["request"] != second["request"]
    assert first["wire"]["id"] != second["wire"]["id"]
    assert first["wire"]["request"].startswith("GET /redirect?q=redirect HTTP/1.1\r\n")
    assert first["wire"]["response"].startswith("HTTP/1.1 301 Moved Permanently\r\n")
    assert second["wire"]["request"].startswith("GET /plain?from=redirect HTTP/1.1\r\n")
    assert b(second["wire"]["response"]) == scenarios()["/plain"].response
    (final,) = [f for f in wire.out["final"] if f["tag"] == "redirect"]
    assert final["url"].endswith("/plain?from=redirect") and final["status"] == 200

    moved, failed = wire.attempts("redirect-fail")
    assert moved["wire"]["response"].startswith("HTTP/1.1 302 Found\r\n")
    assert failed["exception"] == "ResponseDataLossError" and failed["wire"] is None

    tries = wire.attempts("error")
    assert [t["status"] for t in tries] == [500, 500]
    assert tries[0]["request"] != tries[1]["request"]
    assert tries[0]["wire"]["id"] != tries[1]["wire"]["id"]
    assert all(b(t["wire"]["response"]) == scenarios()["/error"].response for t in tries)


def test_raw_bytes_keep_what_scrapy_normalises(wire: Run) -> None:
    def only(tag: str) -> dict[str, Any]:
        (attempt,) = wire.attempts(tag)
        return attempt

    mixed = only("mixed-case")
    assert (
        "\r\nx-CuStOm-Header: Value  With  Spaces\r\ncontent-TYPE: text/plain\r\n"
        in (mixed["wire"]["response"])
    )
    assert ["X-Custom-Header", "Value  With  Spaces"] in mixed["headers"]
    assert only("fine")["wire"]["response"].startswith("HTTP/1.1 200 Everything Is Fine\r\n")
    assert only("gone-fishing")["wire"]["response"].startswith("HTTP/1.1 404 Gone Fishing\r\n")
    chunked = only("chunked")
    assert "\r\nTransfer-Encoding: chunked\r\n" in chunked["wire"]["response"]
    assert ';part=0;note="x y"\r\n' in chunked["wire"]["response"]
    assert chunked["wire"]["response"].endswith("\r\n0\r\nX-Checksum: done\r\n\r\n")
    assert not any(name.lower() == "transfer-encoding" for name, _ in chunked["headers"])
    cookies = only("cookies")["wire"]["response"]
    assert cookies.count("\r\nSet-Cookie: ") == 2
    assert only("bare-lf")["wire"]["response"] == scenarios()["/bare-lf"].response.decode()
    assert only("folded")["wire"]["response"].count("\r\n  second\r\n") == 1
    post = only("post")["wire"]["request"]
    assert post.startswith("POST /echo?q=post HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{wire.plain.port}\r\n" in post
    assert "\r\nContent-Length: 10\r\n" in post and post.endswith("\r\n\r\na=1&b=caf\xe9")
    gz = only("tls/gzip")["wire"]["response"]
    assert b(gz).endswith(scenarios()["/gzip"].response.split(b"\r\n\r\n", 1)[1])


def test_partial_and_limit_responses(wire: Run) -> None:
    (limit,) = wire.attempts("limit")
    assert len(limit["body"]) == LIMIT and limit["wire"]["complete"]

    (allowed,) = wire.attempts("dataloss-allowed")
    assert allowed["flags"] == ["dataloss"]
    assert b(allowed["wire"]["response"]) == scenarios()["/truncated"].response

    (stop,) = wire.attempts("stop")
    assert "download_stopped" in stop["flags"]
    full = scenarios()["/large"].response
    got = b(stop["wire"]["response"])
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and full.startswith(got) and len(got) < len(full)

    (overrun,) = wire.attempts("overrun")
    assert b(overrun["wire"]["response"]) + b"EXTRA" == scenarios()["/overrun"].response
    assert overrun["body"] == "exact" and overrun["wire"]["complete"]

    (interim,) = wire.attempts("interim")
    assert interim["status"] == 200 and interim["body"] == "after the hints"
    assert interim["wire"]["response"].startswith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 ")

    for tag in ("close", "tls/close"):
        (close,) = wire.attempts(tag)
        assert close["flags"] == ["partial"] and close["wire"]["complete"]
