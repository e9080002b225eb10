"""Bounded memory in the crawl process, whatever a server sends.

One real crawl (``python -m spiders.run JOB.json`` in a subprocess) against a loopback
server serving a gzip bomb (3.6 MB expanding to 512 MiB of HTML), an HTML body without
end, a 300 MiB video, a 24 MiB chunked body and a 6 MiB PDF, with a 64 MiB archive limit.
Its peak RSS, read by a small wrapper from ``getrusage(RUSAGE_CHILDREN)``, must stay under
1 GB; every link must get its outcome; the cut responses must be archived as the server
sent them up to the limit and marked ``WARC-Truncated: length``. The bounded decoders are
also checked on their own, for every content-coding.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import brotli
import pytest
from backports import zstd
from pypdf import PdfWriter
from scrapy import Request
from scrapy.http import HtmlResponse, Response
from wireserver import (
    BOMB_DECODED,
    PARAGRAPH,
    WHOLE_BODY,
    Scenario,
    WireServer,
    gzip_bomb,
    hostile_scenarios,
    response,
    scenarios,
    sent_prefix,
)

from archive import iter_records, verify_record
from spiders.compression import (
    DECODED_PREFIX_FLAG,
    BoundedDecompressionMiddleware,
    decode_prefix,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
GB = 1_000_000_000
ARCHIVE_LIMIT = 64 * MIB
PARSE_LIMIT = 4 * MIB
PATHS = ["/bomb", "/endless", "/big", "/whole", "/report.pdf", "/plain"]
CUT = ("/endless", "/big")

# Runs the crawl and reports the peak RSS of its process (the only child it waits for).
# The address-space limit keeps a crawl that does not bound its memory from taking the
# machine down with it: it fails with MemoryError instead.
WRAPPER = """
import json, resource, subprocess, sys
job, out, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
proc = subprocess.run([sys.executable, "-m", "spiders.run", job], preexec_fn=cap)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
open(out, "w").write(json.dumps({"returncode": proc.returncode, "peak_rss_bytes": peak}))
"""


def _report_pdf() -> bytes:
    """A 6 MiB PDF (bigger than the parse limit) with a title."""
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.add_metadata({"/Title": "Annual report on detentions"})
    writer.add_attachment("annex.bin", random.Random(5).randbytes(6 * MIB))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _link(i: int, url: str, path: str) -> dict[str, Any]:
    return {"link_id": i, "url": url, "kind": "report", "label": path,
            "country": "Testland", "city": None, "sources": []}  # fmt: skip


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("memory")
    pdf = response("200 OK", [("Content-Type", "application/pdf")], _report_pdf())
    table = {**scenarios(), **hostile_scenarios(), "/report.pdf": Scenario(pdf)}
    with WireServer(table) as server:
        links = [_link(i, server.base_url + p, p) for i, p in enumerate(PATHS, start=1)]
        job = home / "job.json"
        job.write_text(json.dumps({"run_id": 1, "links": links, "warc_dir": str(home / "w")}))
        env = {
            **os.environ,
            "LINKARCHIVE_HOME": str(home),
            "LINKARCHIVE_ARCHIVE_MAXSIZE": str(ARCHIVE_LIMIT),
            "LINKARCHIVE_PARSE_MAXSIZE": str(PARSE_LIMIT),
            "LINKARCHIVE_RETRY_TIMES": "0",
            "LINKARCHIVE_DOWNLOAD_TIMEOUT": "120",
        }
        proc = subprocess.run(
            [sys.executable, "-c", WRAPPER, str(job), str(home / "rss.json"), str(8 * GB)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        exchanges = list(server.exchanges)
    measured = json.loads((home / "rss.json").read_text())
    assert measured["returncode"] == 0, proc.stderr[-4000:]
    result = json.loads((home / "job.result.json").read_text())
    files = sorted((home / "w").glob("*.warc.gz"))
    records = [record for path in files for _, record in iter_records(path)]
    return {
        "peak": measured["peak_rss_bytes"],
        "result": result,
        "files": files,
        "records": records,
        "exchanges": exchanges,
        "table": table,
        "log": proc.stderr,
    }


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3].split("?")[0]


def _responses(crawl: dict[str, Any]) -> dict[str, Any]:
    """The response record of each link's page, by path."""
    out = {}
    for record in crawl["records"]:
        path = _path(record.target_uri or "http://x/")
        if record.rec_type == "response" and path in PATHS:
            assert path not in out, "one response per page"
            out[path] = record
    return out


def test_peak_rss_stays_under_one_gigabyte(crawl: dict[str, Any]) -> None:
    print(f"crawl peak RSS: {crawl['peak'] / MIB:.0f} MiB")
    assert crawl["peak"] < GB
    # spiders.run reports its own peak too, once it does.
    assert crawl["result"].get("peak_rss_bytes", 0) < GB


def test_every_link_gets_its_outcome(crawl: dict[str, Any]) -> None:
    outcomes = {}
    for record in crawl["records"]:
        if record.rec_type == "metadata" and record.payload.startswith(b"{"):
            context = json.loads(record.payload)
            if context.get("role") == "page":
                outcomes[_path(context["url"])] = context
    assert sorted(outcomes) == sorted(PATHS)
    for path, context in outcomes.items():
        assert context["outcome"]["status"] == "alive", (path, context["outcome"])
        assert context["outcome"]["http_status"] == 200
    # The pages were parsed, from their decoded prefix: each one's image was fetched.
    targets = {e.target for e in crawl["exchanges"]}
    assert {"/image?from=Bomb", "/image?from=Endless"} <= targets


def test_every_response_is_the_servers_bytes_whole_or_cut_at_the_limit(
    crawl: dict[str, Any],
) -> None:
    responses = _responses(crawl)
    assert sorted(responses) == sorted(PATHS)
    for path in CUT:  # cut at the archive limit, exactly, and marked so
        record = responses[path]
        assert record.get("WARC-Truncated") == "length", path
        assert len(record.block) == ARCHIVE_LIMIT, path
        assert record.block == sent_prefix(crawl["table"][path], ARCHIVE_LIMIT), path
    served = {e.path: e for e in crawl["exchanges"]}
    assert len(served["/endless"].sent) + served["/endless"].streamed >= ARCHIVE_LIMIT
    bomb = responses["/bomb"]  # small on the wire: archived whole, still gzip
    assert bomb.block == crawl["table"]["/bomb"].response
    assert bomb.http_header("Content-Encoding") == "gzip"
    # Bigger than what is kept in memory (spooled, then streamed), framing and all.
    sent = sent_prefix(crawl["table"]["/whole"], 2 * WHOLE_BODY)
    assert len(sent) < 2 * WHOLE_BODY and responses["/whole"].block == sent
    for path in ("/bomb", "/whole", "/plain", "/report.pdf"):
        assert responses[path].block == sent_prefix(crawl["table"][path], 2 * WHOLE_BODY)
        assert responses[path].get("WARC-Truncated") is None, path


def test_truncated_records_verify_and_warcio_check_passes(crawl: dict[str, Any]) -> None:
    truncated = [r for r in crawl["records"] if r.get("WARC-Truncated") == "length"]
    assert sorted(_path(r.target_uri) for r in truncated) == sorted(CUT)
    assert [p for record in crawl["records"] for p in verify_record(record)] == []
    check = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", "-v", *map(str, crawl["files"])],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout
    assert "failed" not in check.stdout


# --- the bounded decoders, on their own ------------------------------------------------


def _bomb(encoding: bytes, size: int) -> bytes:
    """``size`` bytes of paragraphs, compressed in pieces (memory stays small)."""
    block = PARAGRAPH * (MIB // len(PARAGRAPH))
    pieces = [block] * (size // len(block))
    if encoding == b"gzip":
        z = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return b"".join(map(z.compress, pieces)) + z.flush()
    if encoding == b"deflate":
        z = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw, as some servers send
        return b"".join(map(z.compress, pieces)) + z.flush()
    if encoding == b"br":
        b = brotli.Compressor(quality=1)
        return b"".join(map(b.process, pieces)) + b.finish()
    c = zstd.ZstdCompressor()
    return b"".join(map(c.compress, pieces)) + c.flush()


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"br", b"zstd"])
def test_a_bomb_decodes_to_its_prefix_only(encoding: bytes) -> None:
    bomb = _bomb(encoding, 256 * MIB)
    decoded, more = decode_prefix(bomb, encoding, PARSE_LIMIT)
    assert more and len(decoded) == PARSE_LIMIT
    assert decoded == (PARAGRAPH * (PARSE_LIMIT // len(PARAGRAPH) + 1))[:PARSE_LIMIT]
    # A body cut short (the handler keeps a prefix) decodes as far as it goes.
    partial, more = decode_prefix(bomb[: len(bomb) // 3], encoding, 1024 * MIB)
    assert not more and len(partial) > 0 and decoded.startswith(partial[:PARSE_LIMIT])


def test_the_middleware_decodes_parsed_types_only_and_keeps_the_prefix() -> None:
    middleware = BoundedDecompressionMiddleware(PARSE_LIMIT)
    request = Request("http://127.0.0.1/bomb")
    headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    page = HtmlResponse(request.url, headers=headers, body=gzip_bomb(), request=request)
    decoded = middleware.process_response(request, page)
    assert isinstance(decoded, HtmlResponse) and DECODED_PREFIX_FLAG in decoded.flags
    assert len(decoded.body) == PARSE_LIMIT < BOMB_DECODED
    assert b"Content-Encoding" not in decoded.headers
    assert decoded.css("title::text").get() == "Bomb"
    small = gzip.compress(b"<title>t</title>")
    plain = middleware.process_response(
        request, HtmlResponse(request.url, headers=headers, body=small, request=request)
    )
    assert plain.body == b"<title>t</title>" and DECODED_PREFIX_FLAG not in plain.flags
    image = Response(
        request.url, headers={"Content-Type": "image/svg+xml", "Content-Encoding": "gzip"},
        body=small, request=request,
    )  # fmt: skip
    assert middleware.process_response(request, image) is image  # archived as is; not parsed
    head = Request(request.url, method="HEAD")
    assert middleware.process_response(head, page) is page
