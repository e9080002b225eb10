"""Server-side request forgery: nothing reaches a non-public address unless the operator
allows it (``LINKARCHIVE_ALLOW_ADDRESSES``), after DNS resolution and on every redirect,
in the crawler, the browser's recording proxy and seed imports.

The test servers listen on 127.0.0.2 (a "public" site: the only address allowed) and on
127.0.0.1 (the machine's "internal" service, which must never see a request).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_recording_proxy import Recorded, _fetch, _request

from archive import iter_records
from pipeline.cli import main
from pipeline.netpolicy import AddressPolicy, AddressRefused, PolicyError
from spiders.browser.proxy import RecordingProxy


class Site:
    """A one-address HTTP server answering from ``pages`` (path -> (status, headers, body)),
    recording every path it was asked for."""

    def __init__(self, address: str, pages: dict[str, tuple[int, dict[str, str], bytes]]):
        self.pages, self.seen = pages, []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                site.seen.append(self.path)
                status, headers, body = site.pages.get(self.path, (404, {}, b"not here"))
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://{address}:{self.port}"

    def __enter__(self) -> Site:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[Site]:
    secret = (200, {"Content-Type": "text/plain"}, b"internal secret: do not archive")
    with Site("127.0.0.1", {"/secret": secret, "/list.html": secret}) as served:
        yield served


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    with pytest.raises(AddressRefused, match="LINKARCHIVE_ALLOW_ADDRESSES"):
        AddressPolicy.parse("").check_ip(address, address)


def test_the_operator_allows_ranges_addresses_and_host_names() -> None:
    policy = AddressPolicy.parse("127.0.0.0/8, 10.0.0.7, intranet.example., ::1")
    for host, ip in [("a", "127.9.9.9"), ("b", "10.0.0.7"), ("intranet.example", "10.9.9.9"),
                     ("c", "::1"), ("d", "::ffff:127.0.0.1"), ("e", "93.184.216.34")]:  # fmt: skip
        policy.check_ip(host, ip)
    with pytest.raises(AddressRefused):
        policy.check_ip("other.example", "10.9.9.9")
    with pytest.raises(AddressRefused, match=r"localhost \(127\.0\.0\.1\)"):
        AddressPolicy.parse("").resolve("localhost", 80)
    for bad in ("10.0.0.0/33", "http://x/", "a b"):
        with pytest.raises(PolicyError, match="LINKARCHIVE_ALLOW_ADDRESSES"):
            AddressPolicy.parse(bad)


@pytest.mark.e2e
def test_a_crawled_page_cannot_make_the_crawler_fetch_an_internal_address(
    internal: Site, prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page on the one allowed address embeds the internal service by literal address,
    by a host name resolving to it, and through a redirect: the page is archived, the
    internal service never sees a request, nothing of it is in the WARC files, and the
    metadata records say why each was refused."""
    from flows.crawl import crawl_flow
    from pipeline.config import paths

    page = (
        f'<html><head><title>Rally</title><link rel="stylesheet" href="/go"></head><body>'
        f'<p>Report</p><img src="http://127.0.0.1:{internal.port}/secret">'
        f'<img src="http://localhost:{internal.port}/secret"></body></html>'
    ).encode()
    pages = {
        "/report.html": (200, {"Content-Type": "text/html"}, page),
        "/go": (302, {"Location": f"http://127.0.0.1:{internal.port}/secret?via=redirect"}, b""),
    }
    monkeypatch.setenv("LINKARCHIVE_ALLOW_ADDRESSES", "127.0.0.2/32")
    monkeypatch.setenv("LINKARCHIVE_ALLOWED_HOSTS", "127.0.0.1,127.0.0.2,localhost")
    with Site("127.0.0.2", pages) as public:
        seeds = tmp_path / "seeds.csv"
        seeds.write_text(f"country,city,kind,label,url\nGermany,Berlin,report,R,{public.base}"
                         "/report.html\n")  # fmt: skip
        home = tmp_path / "home"
        result = crawl_flow(source=str(seeds), home=str(home))
        assert "/go" in public.seen
    assert result["links_done"] == 1 and result["links_failed"] == 0
    assert internal.seen == []
    errors, archived = [], b""
    for warc in paths(home).warcs.glob("*.warc.gz"):
        archived += warc.read_bytes()
        for _, record in iter_records(warc):
            if record.rec_type == "metadata" and "json" in (record.content_type or ""):
                context = json.loads(record.payload)
                if context.get("error"):
                    errors.append((context["url"], context["error"]))
    assert b"do not archive" not in archived
    refused = {url: error for url, error in errors if "refused" in error}
    inside = f"127.0.0.1:{internal.port}/secret"
    expected = {f"http://{inside}", f"http://{inside}?via=redirect",
                f"http://localhost:{internal.port}/secret"}  # fmt: skip
    assert expected <= set(refused), errors
    assert all("LINKARCHIVE_ALLOW_ADDRESSES" in error for error in refused.values())


def test_a_seed_import_from_an_internal_address_is_refused_before_any_request(
    internal: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """No request, so the answer cannot tell an open port from a closed one."""
    monkeypatch.delenv("LINKARCHIVE_ALLOW_ADDRESSES")
    home = str(tmp_path / "home")
    for url in (f"{internal.base}/list.html", f"http://localhost:{internal.port}/list.html",
                "http://127.0.0.1:9/list.html"):  # fmt: skip
        assert main(["--home", home, "seeds", "import", url]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "LINKARCHIVE_ALLOW_ADDRESSES" in err, err
        assert "refused" in err and "Connection refused" not in err
    assert internal.seen == []
    monkeypatch.setenv("LINKARCHIVE_ALLOW_ADDRESSES", "10.0.0.0/33")
    assert main(["--home", home, "seeds", "import", f"{internal.base}/list.html"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("linkarchive: error: LINKARCHIVE_ALLOW_ADDRESSES: '10.0.0.0/33'")


def test_the_recording_proxy_refuses_internal_addresses_and_says_why(internal: Site) -> None:
    recorded = Recorded()

    async def run() -> tuple[list[bytes], RecordingProxy]:
        proxy = await RecordingProxy(recorded, addresses=AddressPolicy.parse("127.0.0.2")).start()
        answers = [
            await _fetch(proxy, _request("GET", f"{internal.base}/secret", "127.0.0.1")),
            await _fetch(
                proxy, _request("GET", f"http://localhost:{internal.port}/secret", "localhost")
            ),
        ]
        await proxy.close()
        return answers, proxy

    answers, proxy = asyncio.run(run())
    assert all(answer.startswith(b"HTTP/1.1 403") for answer in answers)
    assert internal.seen == [] and recorded.items == []
    assert [e.error and "LINKARCHIVE_ALLOW_ADDRESSES" in e.error for e in proxy.exchanges] == [
        True,
        True,
    ]
