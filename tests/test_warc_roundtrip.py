"""Round trips through archive/: RecordFactory -> RotatingWarcWriter -> reader, checked
byte for byte, and against warcio's own tools (``warcio check`` / ``warcio index``)."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import shutil
import subprocess
import sys
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from archive import (
    ContentDecodingError,
    RecordFactory,
    RotatingWarcWriter,
    Sha256Stream,
    StoredRecord,
    block_bytes,
    decoded_payload,
    iter_records,
    labelled,
    read_record,
    record_id,
    sha256_hex,
    verify_record,
)
from archive.digests import digest_matches, parse_labelled

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
URL = "https://example.org/news/item?id=7"

RESP_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Set-Cookie", "session=abc; Path=/"),
    ("content-encoding", "gzip"),
    ("X-Odd-CASE", "Value  with  spaces"),
    ("Set-Cookie", "theme=dark"),
    ("X-Latin1", "caf\xe9"),
]
HTML = b"<!doctype html><html><body><h1>Report</h1>" + b"<p>witness</p>" * 200 + b"</body></html>"


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: str(uuid.UUID(int=next(counter)))


def uid(n: int) -> str:
    return f"<urn:uuid:{uuid.UUID(int=n)}>"


def factory() -> RecordFactory:
    return RecordFactory(clock=lambda: T0, new_id=ids())


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(tmp_path: Path, f: RecordFactory, groups: list[list]) -> tuple[Path, list]:
    with RotatingWarcWriter(tmp_path, factory=f, hostname="host1", fsync=False) as w:
        locations = [loc for group in groups for loc in w.write_many(group)]
    (path,) = w.closed_files
    return path, locations


def warcio_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warcio.cli", *args], capture_output=True, text=True, timeout=120
    )


# ----------------------------------------------------------------------------- digests


def test_digest_helpers() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert labelled("AB" * 32) == "sha256:" + "ab" * 32
    with pytest.raises(ValueError):
        labelled("abc")
    stream = Sha256Stream()
    stream.update(b"a").update(b"bc")
    assert stream.hexdigest() == sha256_hex(b"abc")
    assert stream.labelled() == labelled(sha256_hex(b"abc"))
    assert stream.length == 3
    # other tools' encodings are understood when reading
    import base64

    raw = hashlib.sha1(b"abc").digest()
    assert parse_labelled("sha1:" + base64.b32encode(raw).decode()) == ("sha1", raw)
    assert digest_matches(
        "SHA-256:" + base64.b64encode(hashlib.sha256(b"abc").digest()).decode(), b"abc"
    )
    assert not digest_matches(labelled(sha256_hex(b"abd")), b"abc")


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum")
def test_payload_digest_equals_sha256sum_output(tmp_path: Path) -> None:
    body = gzip.compress(HTML, mtime=0)
    (tmp_path / "body").write_bytes(body)
    out = subprocess.run(["sha256sum", str(tmp_path / "body")], capture_output=True, text=True)
    rec = factory().response(URL, 200, "OK", "HTTP/1.1", RESP_HEADERS, body)
    assert rec.rec_headers.get_header("WARC-Payload-Digest") == "sha256:" + out.stdout.split()[0]


# ----------------------------------------------------------------------------- records


def test_response_round_trip_is_byte_exact(tmp_path: Path) -> None:
    f = factory()
    body = gzip.compress(HTML, mtime=0)
    resp = f.response(URL, 200, "Fine Thanks", "HTTP/1.1", RESP_HEADERS, body, ip="127.0.0.1")
    req = f.request(
        URL,
        "GET",
        "/news/item?id=7",
        "HTTP/1.1",
        [("Host", "example.org"), ("User-Agent", "linkarchive-test"), ("accept", "*/*")],
        ip="127.0.0.1",
        concurrent_to=record_id(resp),
    )
    path, (loc_resp, loc_req) = write(tmp_path, f, [[resp, req]])

    expected_head = (
        b"HTTP/1.1 200 Fine Thanks\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Set-Cookie: session=abc; Path=/\r\n"
        b"content-encoding: gzip\r\n"
        b"X-Odd-CASE: Value  with  spaces\r\n"
        b"Set-Cookie: theme=dark\r\n"
        b"X-Latin1: caf\xe9\r\n"
        b"\r\n"
    )
    block = expected_head + body
    assert block_bytes(resp) == block

    got = read_record(path, loc_resp.offset)
    assert isinstance(got, StoredRecord)
    assert got.rec_type == "response"
    assert got.block == block
    assert got.payload == body
    assert got.http_status == 200
    assert got.http_reason == "Fine Thanks"
    assert got.http_version == "HTTP/1.1"
    assert got.http_headers == RESP_HEADERS
    assert got.http_header_all("set-cookie") == ["session=abc; Path=/", "theme=dark"]
    assert got.headers == [
        ("WARC-Type", "response"),
        ("WARC-Record-ID", uid(1)),
        ("WARC-Date", "2024-05-01T12:00:00.123456Z"),
        ("WARC-Warcinfo-ID", uid(3)),
        ("WARC-Target-URI", URL),
        ("WARC-IP-Address", "127.0.0.1"),
        ("Content-Type", "application/http; msgtype=response"),
        ("Content-Length", str(len(block))),
        ("WARC-Block-Digest", sha(block)),
        ("WARC-Payload-Digest", sha(body)),
    ]
    assert verify_record(got) == []

    got_req = read_record(path, loc_req.offset)
    assert got_req.block == (
        b"GET /news/item?id=7 HTTP/1.1\r\n"
        b"Host: example.org\r\nUser-Agent: linkarchive-test\r\naccept: */*\r\n\r\n"
    )
    assert got_req.payload == b""
    assert (got_req.http_method, got_req.http_target, got_req.http_version) == (
        "GET",
        "/news/item?id=7",
        "HTTP/1.1",
    )
    assert got_req.http_status is None
    assert got_req.get("WARC-Concurrent-To") == record_id(resp) == uid(1)
    assert got_req.record_id == uid(2)
    assert got_req.get("WARC-Payload-Digest") == sha(b"")
    assert verify_record(got_req) == []
    # the writer did not touch the caller's records
    assert resp.rec_headers.get_header("WARC-Warcinfo-ID") is None


def test_post_request_body_and_empty_reason(tmp_path: Path) -> None:
    f = factory()
    resp = f.response(URL, 204, "", "HTTP/1.1", [], b"")
    req = f.request(
        URL,
        "POST",
        "/form",
        "HTTP/1.0",
        [("Content-Type", "application/x-www-form-urlencoded")],
        b"q=%C3%A9&x=1",
        concurrent_to=record_id(resp),
    )
    path, (loc_resp, loc_req) = write(tmp_path, f, [[resp, req]])
    got = read_record(path, loc_resp.offset)
    assert got.block == b"HTTP/1.1 204 \r\n\r\n"
    assert (got.http_status, got.http_reason, got.http_headers, got.payload) == (204, "", [], b"")
    got_req = read_record(path, loc_req.offset)
    assert got_req.block.startswith(b"POST /form HTTP/1.0\r\n")
    assert got_req.payload == b"q=%C3%A9&x=1"
    assert got_req.get("WARC-Payload-Digest") == sha(b"q=%C3%A9&x=1")
    assert verify_record(got) == verify_record(got_req) == []


def test_gzip_body_is_stored_encoded(tmp_path: Path) -> None:
    f = factory()
    body = gzip.compress(HTML, mtime=0)
    assert body != HTML
    path, (loc,) = write(
        tmp_path, f, [[f.response(URL, 200, "OK", "HTTP/1.1", RESP_HEADERS, body)]]
    )
    got = read_record(path, loc.offset)
    assert got.payload == body  # the gzip bytes, as received
    assert got.get("WARC-Payload-Digest") == sha(body) != sha(HTML)
    assert decoded_payload(got) == HTML


def _stored(headers: list[tuple[str, str]], payload: bytes) -> StoredRecord:
    return StoredRecord("response", [], 200, headers, b"", payload)


def test_decoded_payload_encodings() -> None:
    brotli = pytest.importorskip("brotli")
    assert decoded_payload(_stored([], HTML)) == HTML
    assert decoded_payload(_stored([("Content-Encoding", "identity")], HTML)) == HTML
    assert decoded_payload(_stored([("Content-Encoding", "deflate")], zlib.compress(HTML))) == HTML
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_deflate = raw.compress(HTML) + raw.flush()
    assert decoded_payload(_stored([("Content-Encoding", "deflate")], raw_deflate)) == HTML
    assert decoded_payload(_stored([("Content-Encoding", "br")], brotli.compress(HTML))) == HTML
    # stacked: gzip applied first, then br -> undone right to left
    stacked = brotli.compress(gzip.compress(HTML))
    assert decoded_payload(_stored([("Content-Encoding", "gzip, br")], stacked)) == HTML
    assert decoded_payload(_stored([("Content-Encoding", "GZIP")], gzip.compress(HTML))) == HTML
    # multi-member gzip
    two = gzip.compress(HTML[:100]) + gzip.compress(HTML[100:])
    assert decoded_payload(_stored([("Content-Encoding", "x-gzip")], two)) == HTML
    # still chunked on the wire -> de-chunked; already de-chunked -> left alone
    chunked = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    assert decoded_payload(_stored([("Transfer-Encoding", "chunked")], chunked)) == b"hello world"
    assert decoded_payload(_stored([("Transfer-Encoding", "chunked")], HTML)) == HTML
    with pytest.raises(ContentDecodingError, match="unsupported"):
        decoded_payload(_stored([("Content-Encoding", "compress")], HTML))
    with pytest.raises(ContentDecodingError):
        decoded_payload(_stored([("Content-Encoding", "gzip")], gzip.compress(HTML)[:-20]))
    with pytest.raises(ContentDecodingError):
        decoded_payload(_stored([("Content-Encoding", "gzip")], HTML))


def test_metadata_refers_to_and_resource(tmp_path: Path) -> None:
    f = factory()
    resp = f.response(URL, 200, "OK", "HTTP/1.1", [], b"hi")
    meta = f.metadata(URL, {"title": "Réunion", "links": 3}, refers_to=record_id(resp))
    raw_meta = f.metadata(
        URL, b"outlink: https://a.example/\r\n", content_type="application/warc-fields"
    )
    shot = f.resource("urn:linkarchive:screenshot:1", b"\x89PNG\r\n\x1a\n...", "image/png")
    path, locs = write(tmp_path, f, [[resp, meta], [raw_meta, shot]])

    got = read_record(path, locs[1].offset)
    assert got.rec_type == "metadata"
    assert got.block == got.payload == '{"title":"Réunion","links":3}'.encode()
    assert json.loads(got.block) == {"title": "Réunion", "links": 3}
    assert got.get("WARC-Refers-To") == record_id(resp)
    assert got.content_type == "application/json"
    assert got.http_headers is None and got.http_status is None
    assert got.get("WARC-Block-Digest") == got.get("WARC-Payload-Digest") == sha(got.block)

    got_raw = read_record(path, locs[2].offset)
    assert got_raw.block == b"outlink: https://a.example/\r\n"
    assert got_raw.content_type == "application/warc-fields"
    assert got_raw.get("WARC-Refers-To") is None

    got_shot = read_record(path, locs[3].offset)
    assert (got_shot.rec_type, got_shot.target_uri) == ("resource", "urn:linkarchive:screenshot:1")
    assert got_shot.block == b"\x89PNG\r\n\x1a\n..."
    assert got_shot.content_type == "image/png"
    assert all(verify_record(read_record(path, loc.offset)) == [] for loc in locs)


def test_warcinfo_block_and_links(tmp_path: Path) -> None:
    f = factory()
    fields = {"crawl-run-id": "run-42", "operator": "Jane <j@example.org>", "robots": "obey"}
    with RotatingWarcWriter(tmp_path, factory=f, hostname="host1", warcinfo_fields=fields) as w:
        loc = w.write(f.resource("urn:x:1", b"x", "text/plain"))
    records = list(iter_records(w.closed_files[0]))
    (info_loc, info), (_, rec) = records
    assert info_loc.offset == 0 and info.rec_type == "warcinfo"
    from archive.records import SOFTWARE

    assert SOFTWARE.startswith("linkarchive/")
    assert (
        info.block
        == (
            f"software: {SOFTWARE}\r\n"
            "format: WARC File Format 1.1\r\n"
            "conformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n"
            "hostname: host1\r\n"
            "crawl-run-id: run-42\r\n"
            "operator: Jane <j@example.org>\r\n"
            "robots: obey\r\n"
        ).encode()
    )
    assert info.get("WARC-Filename") == loc.filename == w.closed_files[0].name
    assert info.get("Content-Type") == "application/warc-fields"
    assert info.get("WARC-Payload-Digest") is None
    assert info.get("WARC-Block-Digest") == sha(info.block)
    assert rec.get("WARC-Warcinfo-ID") == info.record_id


def test_dates_always_have_microseconds() -> None:
    f = RecordFactory(clock=lambda: datetime(2024, 1, 2, 3, 4, 5), new_id=ids())  # naive = UTC
    rec = f.resource("urn:x", b"", "text/plain")
    assert rec.rec_headers.get_header("WARC-Date") == "2024-01-02T03:04:05.000000Z"
    cet = timezone(timedelta(hours=1))
    rec = f.resource("urn:x", b"", "text/plain", date=datetime(2024, 1, 2, 4, 4, 5, 7, tzinfo=cet))
    assert rec.rec_headers.get_header("WARC-Date") == "2024-01-02T03:04:05.000007Z"


def test_factory_rejects_malformed_input() -> None:
    f = factory()
    with pytest.raises(ValueError):
        f.response(URL, 200, "OK", "HTTP/1.1", [("X-Evil", "a\r\nInjected: 1")], b"")
    with pytest.raises(ValueError):
        f.response(URL, 200, "OK\r\n", "HTTP/1.1", [], b"")
    with pytest.raises(ValueError):
        f.response(URL, 42, "OK", "HTTP/1.1", [], b"")
    with pytest.raises(ValueError):
        f.request(URL, "GET", "/a b", "HTTP/1.1", [])
    with pytest.raises(ValueError):
        f.response("https://example.org/a b", 200, "OK", "HTTP/1.1", [], b"")
    with pytest.raises(ValueError):
        f.response(URL, 200, "OK", "HTTP/1.1", [], b"", ip="not-an-ip")
    with pytest.raises(ValueError, match="computed by RecordFactory"):
        f.resource("urn:x", b"", "text/plain", extra={"WARC-Block-Digest": "sha256:00"})
    rec = f.response(URL, 200, "OK", "HTTP/1.1", [], b"", ip="[::1]", extra={"WARC-Protocol": "h2"})
    assert rec.rec_headers.get_header("WARC-IP-Address") == "::1"
    assert rec.rec_headers.get_header("WARC-Protocol") == "h2"


def test_verify_record_detects_corruption(tmp_path: Path) -> None:
    f = factory()
    body = gzip.compress(HTML, mtime=0)
    path, (loc,) = write(
        tmp_path, f, [[f.response(URL, 200, "OK", "HTTP/1.1", RESP_HEADERS, body)]]
    )
    good = read_record(path, loc.offset)
    flipped = bytearray(good.block)
    flipped[-1] ^= 0x01
    bad = StoredRecord(
        good.rec_type,
        good.headers,
        200,
        good.http_headers,
        bytes(flipped),
        bytes(flipped[-len(body) :]),
    )
    problems = verify_record(bad)
    assert len(problems) == 2
    assert problems[0].startswith("block digest mismatch: header " + sha(good.block))
    assert problems[1].startswith("payload digest mismatch: header " + sha(body))
    missing = StoredRecord("resource", [("Content-Length", "1")], None, None, b"xy", b"xy")
    assert verify_record(missing) == [
        "Content-Length 1 but block has 2 bytes",
        "missing WARC-Block-Digest",
    ]


def test_large_record_round_trip(tmp_path: Path) -> None:
    """A 100 MB body goes through write, read_record and verify unchanged."""
    f = factory()
    chunk = hashlib.sha256(b"seed").digest() * 32  # 1 KiB
    body = chunk * (100 * 1024)
    path, (loc,) = write(
        tmp_path,
        f,
        [[f.response(URL, 200, "OK", "HTTP/1.1", [("Content-Type", "video/mp4")], body)]],
    )
    got = read_record(path, loc.offset)
    assert len(got.payload) == len(body) and got.payload == body
    assert got.get("WARC-Payload-Digest") == sha(body)
    assert verify_record(got) == []


# ----------------------------------------------------------------------------- warcio tools


def _mixed_file(tmp_path: Path) -> tuple[Path, list]:
    f = factory()
    resp = f.response(
        URL, 200, "OK", "HTTP/1.1", RESP_HEADERS, gzip.compress(HTML, mtime=0), ip="127.0.0.1"
    )
    req = f.request(
        URL,
        "GET",
        "/news/item?id=7",
        "HTTP/1.1",
        [("Host", "example.org")],
        concurrent_to=record_id(resp),
    )
    meta = f.metadata(URL, {"a": 1}, refers_to=record_id(resp))
    res = f.resource("urn:x:1", b"\x00\x01" * 5000, "application/octet-stream")
    return write(tmp_path, f, [[resp, req, meta], [res]])


def test_warcio_check_passes_and_verifies_our_digests(tmp_path: Path) -> None:
    path, locs = _mixed_file(tmp_path)
    result = warcio_cli("check", "-v", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    # warcinfo + 4 records, every one verified (warcio decodes our base16 sha256)
    assert result.stdout.count("digest pass") == 5, result.stdout
    for loc in locs:
        assert f"offset {loc.offset} WARC-Record-ID {loc.record_id}" in result.stdout


def test_warcio_check_fails_on_wrong_digest(tmp_path: Path) -> None:
    """Guards the test above: warcio really compares our sha256:<hex> values."""
    f = factory()
    rec = f.resource("urn:x:1", b"original", "text/plain")
    rec.rec_headers.replace_header("WARC-Block-Digest", sha(b"tampered"))
    path, _ = write(tmp_path, f, [[rec]])
    result = warcio_cli("check", str(path))
    assert result.returncode == 1
    assert "block digest failed: " + sha(b"tampered") in result.stdout


def test_warcio_index_offsets_match_locations(tmp_path: Path) -> None:
    path, locs = _mixed_file(tmp_path)
    result = warcio_cli("index", "-f", "offset,length,warc-type,warc-record-id", str(path))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["warc-type"] for r in rows] == [
        "warcinfo",
        "response",
        "request",
        "metadata",
        "resource",
    ]
    assert [(int(r["offset"]), int(r["length"]), r["warc-record-id"]) for r in rows[1:]] == [
        (loc.offset, loc.length, loc.record_id) for loc in locs
    ]
    # warcio's own content decoding agrees with decoded_payload()
    extracted = subprocess.run(
        [
            sys.executable,
            "-m",
            "warcio.cli",
            "extract",
            "--payload",
            str(path),
            str(locs[0].offset),
        ],
        capture_output=True,
        timeout=120,
    )
    assert extracted.returncode == 0
    assert extracted.stdout == HTML == decoded_payload(read_record(path, locs[0].offset))
    ours = [(loc.offset, loc.length) for loc, _ in iter_records(path)]
    assert ours == [(int(r["offset"]), int(r["length"])) for r in rows]
    assert ours[-1][0] + ours[-1][1] == path.stat().st_size


def test_reads_other_tools_uncompressed_warcs_with_record_separators(tmp_path: Path) -> None:
    """wget writes uncompressed WARC/1.0 with CRLFCRLF after each record: all readable."""
    import shutil
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    wget = shutil.which("wget")
    if wget is None:
        pytest.skip("wget not installed")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"<html><body><img src='/a.png'></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html" if self.path == "/" else "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        subprocess.run(
            [wget, "-q", "-p", "--no-warc-compression", "--warc-file", str(tmp_path / "w"),
             "-P", str(tmp_path / "files"), url],
            check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
    records = list(iter_records(tmp_path / "w.warc"))
    types = [record.rec_type for _, record in records]
    assert types.count("response") >= 2 and types[0] == "warcinfo"
    assert all(verify_record(record) == [] for _, record in records)


def test_a_lying_content_length_is_one_error_not_warcio_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A record whose Content-Length is short (another tool's bug or a flipped byte):
    reading stops with TruncatedWarcError, and warcio's multi-line warning with the
    raw bytes never reaches the terminal."""
    from archive import TruncatedWarcError

    block = b"<html>" + b"x" * 40 + b"</html>"
    head = (
        "WARC/1.1\r\nWARC-Type: resource\r\nWARC-Record-ID: " + uid(1) + "\r\n"
        "WARC-Target-URI: " + URL + "\r\nWARC-Date: 2024-05-01T12:00:00Z\r\n"
        "Content-Type: text/html\r\nContent-Length: " + str(len(block) - 5) + "\r\n\r\n"
    ).encode()
    path = tmp_path / "lying.warc"
    path.write_bytes(head + block + b"\r\n\r\n" + head + block + b"\r\n\r\n")
    with pytest.raises(TruncatedWarcError):
        list(iter_records(path))
    out, err = capfd.readouterr()
    assert "Remainder" not in err + out and "WARNING" not in err + out


WIRE_RESPONSE = (
    b"HTTP/1.1 200 Everything Is Fine\r\n"
    b"content-TYPE: text/html; charset=utf-8\r\n"
    b"Set-Cookie: a=1; Path=/\r\n"
    b"x-CuStOm-Header:   spaced   \r\n"
    b"Set-Cookie: b=2; Path=/\r\n"
    b"Content-Encoding: gzip\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
)


def _chunked(data: bytes, size: int = 7) -> bytes:
    parts = [b"%x;ext=1\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
             for i in range(0, len(data), size)]  # fmt: skip
    return b"".join(parts) + b"0\r\n\r\n"


def test_wire_response_is_stored_byte_for_byte_and_decodes(tmp_path: Path) -> None:
    page = "<html><title>Вільна Беларусь</title></html>".encode()
    raw = WIRE_RESPONSE + _chunked(gzip.compress(page, mtime=0))
    factory = RecordFactory()
    response = factory.response_from_wire("http://127.0.0.1/w", raw, ip="127.0.0.1")
    request_raw = b"GET /w HTTP/1.1\r\nHost: 127.0.0.1\r\naccept-ENCODING: gzip\r\n\r\n"
    request = factory.request_from_wire(
        "http://127.0.0.1/w", request_raw, concurrent_to=record_id(response)
    )
    with RotatingWarcWriter(tmp_path, factory=factory) as writer:
        locations = writer.write_many([response, request])
    path = tmp_path / locations[0].filename
    stored = read_record(path, locations[0].offset)
    assert stored.block == raw
    assert stored.http_reason == "Everything Is Fine"
    assert stored.http_header_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert ("content-TYPE", "text/html; charset=utf-8") in stored.http_headers
    assert verify_record(stored) == []
    assert decoded_payload(stored) == page
    assert read_record(path, locations[1].offset).block == request_raw
    check = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout


def test_incomplete_wire_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="no end of headers"):
        RecordFactory().response_from_wire("http://127.0.0.1/", b"HTTP/1.1 200 OK\r\nX: y")
