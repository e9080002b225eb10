"""The conformance matrix: the real crawler against a server that records what it sent.

For every scenario the stored WARC record block must equal the bytes the server wrote
(a revisit: its head), the request record the bytes it read, digests must verify, and
`warcio check` must pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from wireserver import HTML, LIMIT, WireServer

from archive import decoded_payload, iter_records, verify_record

pytestmark = pytest.mark.e2e

MATRIX = [
    "/plain", "/gzip", "/deflate", "/chunked", "/gzip-chunked", "/cookies", "/mixed-case",
    "/fine", "/gone-fishing", "/redirect", "/missing", "/error", "/image", "/empty",
    "/no-content", "/limit", "/large", "/interim", "/close", "/trickle",
]  # fmt: skip
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("conformance")
    with WireServer() as server:
        links = [
            {"link_id": i, "url": server.base_url + path, "kind": "report", "label": path,
             "country": "Testland", "city": None, "sources": []}
            for i, path in enumerate(MATRIX, start=1)
        ]  # fmt: skip
        job = home / "job.json"
        job.write_text(json.dumps({"run_id": 1, "links": links, "warc_dir": str(home / "w")}))
        env = {
            **os.environ,
            "LINKARCHIVE_HOME": str(home),
            "LINKARCHIVE_DOWNLOAD_MAXSIZE": str(max(LIMIT, 400_000)),
            "LINKARCHIVE_RETRY_TIMES": "1",
        }
        proc = subprocess.run(
            [sys.executable, "-m", "spiders.run", str(job)], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        exchanges = list(server.exchanges)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted((home / "w").glob("*.warc.gz"))
    return {"files": files, "exchanges": exchanges}


def _records(crawl: dict) -> list:
    return [record for path in crawl["files"] for _, record in iter_records(path)]


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3].split("?")[0]


def test_every_response_block_is_the_bytes_the_server_sent(crawl: dict) -> None:
    sent: dict[str, list[bytes]] = {}
    for exchange in crawl["exchanges"]:
        sent.setdefault(exchange.path, []).append(exchange.sent)
    seen = set()
    for record in _records(crawl):
        if record.rec_type == "response":
            wire = [_final(s) for s in sent[_path(record.target_uri)]]
            assert record.block in wire, record.target_uri
            seen.add(_path(record.target_uri))
        elif record.rec_type == "revisit":  # a payload archived before: the head only
            heads = [_head(_final(s)) for s in sent[_path(record.target_uri)]]
            assert record.block in heads
            seen.add(_path(record.target_uri))
    assert seen == set(MATRIX)


def test_every_request_block_is_the_bytes_the_server_read(crawl: dict) -> None:
    received = {exchange.received for exchange in crawl["exchanges"]}
    requests = [r for r in _records(crawl) if r.rec_type == "request"]
    assert len(requests) == len(crawl["exchanges"])
    assert all(record.block in received for record in requests)


def test_every_exchange_is_archived_redirects_errors_and_each_retry(crawl: dict) -> None:
    responses = [r for r in _records(crawl) if r.rec_type in ("response", "revisit")]
    by_path: dict[str, list[int]] = {}
    for record in responses:
        by_path.setdefault(_path(record.target_uri), []).append(record.http_status)
    assert by_path["/redirect"] == [301]
    assert by_path["/missing"] == [404] and by_path["/gone-fishing"] == [404]
    assert by_path["/error"] == [500, 500]  # the first attempt and its retry
    assert len(responses) == len(crawl["exchanges"])


def test_reason_phrases_headers_and_codings_survive(crawl: dict) -> None:
    records = {
        _path(r.target_uri): r for r in _records(crawl) if r.rec_type in ("response", "revisit")
    }
    assert records["/fine"].http_reason == "Everything Is Fine"
    assert records["/gone-fishing"].http_reason == "Gone Fishing"
    assert records["/cookies"].http_header_all("Set-Cookie") == [
        "session=abc123; Path=/; HttpOnly",
        "theme=dark; Path=/",
    ]
    assert ("x-CuStOm-Header", "Value  With  Spaces") in records["/mixed-case"].http_headers
    for path in ("/chunked", "/gzip-chunked"):  # framing kept in the block
        assert records[path].http_header("Transfer-Encoding") == "chunked"
        assert b"\r\n0\r\n" in records[path].payload  # the last-chunk line
    for path in ("/gzip", "/deflate", "/chunked", "/gzip-chunked"):
        if records[path].rec_type == "response":
            assert decoded_payload(records[path]) == HTML
    assert records["/gzip"].payload[:2] == b"\x1f\x8b"  # stored content-encoded
    assert len(records["/limit"].payload) == LIMIT
    assert records["/empty"].payload == b""


def test_digests_verify_and_warcio_check_passes(crawl: dict) -> None:
    assert [p for record in _records(crawl) for p in verify_record(record)] == []
    check = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", "-v", *map(str, crawl["files"])],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout
    assert "failed" not in check.stdout


def _final(sent: bytes) -> bytes:
    while sent.startswith(b"HTTP/1.1 1"):
        sent = sent[sent.index(b"\r\n\r\n") + 4 :]
    return sent


def _head(sent: bytes) -> bytes:
    return sent[: sent.index(b"\r\n\r\n") + 4]
