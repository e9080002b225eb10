"""One real Scrapy crawl for tests/test_wire_capture.py, run as a subprocess.

``python tests/wirecrawl.py JOB.json``: JOB names the download handler (``wire`` or
``stock``), the requests to make (``requests``, all at once) and request chains
(``chains``, each request made after the previous one's response, so a keep-alive
connection carries them in turn), and where to write the JSON result. Bytes are written as
latin-1 strings. Every download attempt is recorded by a downloader middleware at priority
950 (where ``WarcCaptureMiddleware`` sits), what reached the spider by its callbacks.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler, CrawlerProcess
from scrapy.exceptions import StopDownload
from scrapy.http import Response
from twisted.python.failure import Failure

from spiders.wire import WIRE_META_KEY, WireExchange, _WireTap

HANDLERS = {
    "wire": "spiders.wire.WireCaptureDownloadHandler",
    "stock": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
}


def text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("latin-1")


def headers_list(headers: Any) -> list[list[str]]:
    return [
        [name.decode("latin-1"), value.decode("latin-1")]
        for name, values in headers.items()
        for value in values
    ]


def wire_dict(exchange: Any) -> dict[str, Any] | None:
    if exchange is None:
        return None
    assert isinstance(exchange, WireExchange), exchange
    RESULTS.exchanges.append(exchange)  # kept alive, so ids stay distinct
    return {
        "id": id(exchange),
        "request": text(exchange.request_bytes),
        "response": text(exchange.response_bytes),
        "peer_ip": exchange.peer_ip,
        "peer_port": exchange.peer_port,
        "complete": exchange.complete,
    }


class Results:
    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []
        self.final: list[dict[str, Any]] = []
        self.requests: list[Request] = []  # kept alive, so identities stay distinct
        self.exchanges: list[WireExchange] = []

    def request_index(self, request: Request) -> int:
        for i, seen in enumerate(self.requests):
            if seen is request:
                return i
        self.requests.append(request)
        return len(self.requests) - 1


RESULTS = Results()


class AttemptRecorder:
    """At 950: what each download attempt left in meta, with the raw Scrapy Response."""

    def process_response(self, request: Request, response: Response) -> Response:
        RESULTS.attempts.append(
            {
                "tag": request.meta["tag"],
                "request": RESULTS.request_index(request),
                "url": request.url,
                "status": response.status,
                "headers": headers_list(response.headers),
                "body": text(response.body),
                "flags": response.flags,
                "ip": str(response.ip_address) if response.ip_address else None,
                "protocol": response.protocol,
                "wire": wire_dict(request.meta.get(WIRE_META_KEY)),
            }
        )
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        RESULTS.attempts.append(
            {
                "tag": request.meta["tag"],
                "request": RESULTS.request_index(request),
                "url": request.url,
                "exception": type(exception).__name__,
                "wire": wire_dict(request.meta.get(WIRE_META_KEY)),
            }
        )


class WireSpider(Spider):
    name = "wire"
    handle_httpstatus_list = [204, 304, 404, 500]

    def __init__(self, job: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> WireSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.bytes_received, signal=signals.bytes_received)
        crawler.signals.connect(spider.closed_check, signal=signals.spider_closed)
        return spider

    def make(self, spec: dict[str, Any], chain: list[dict[str, Any]]) -> Request:
        return Request(
            spec["url"],
            method=spec.get("method", "GET"),
            body=spec.get("body", "").encode("latin-1"),
            headers=spec.get("headers"),
            meta={**spec.get("meta", {}), "tag": spec["tag"], "chain": chain},
            callback=self.parsed,
            errback=self.failed,
            dont_filter=True,
        )

    async def start(self) -> AsyncIterator[Request]:
        for spec in self.job.get("requests", []):
            yield self.make(spec, [])
        for chain in self.job.get("chains", []):
            yield self.make(chain[0], chain[1:])

    def bytes_received(self, data: bytes, request: Request, spider: Spider) -> None:
        if request.meta.get("stop_download"):
            raise StopDownload(fail=False)

    def _next(self, meta: dict[str, Any]) -> list[Request]:
        chain = meta["chain"]
        return [self.make(chain[0], chain[1:])] if chain else []

    def parsed(self, response: Response) -> list[Request]:
        RESULTS.final.append(
            {
                "tag": response.meta["tag"],
                "url": response.url,
                "status": response.status,
                "headers": headers_list(response.headers),
                "body": text(response.body),
                "flags": response.flags,
            }
        )
        return self._next(response.meta)

    def failed(self, failure: Failure) -> list[Request]:
        request = failure.request  # type: ignore[attr-defined]
        RESULTS.final.append({"tag": request.meta["tag"], "failure": failure.type.__name__})
        return self._next(request.meta)

    def closed_check(self, spider: Spider) -> None:
        # Every tap's bytes must be gone once its download is over.
        gc.collect()
        self.job["leaked_taps"] = sum(
            1
            for obj in gc.get_objects()
            if isinstance(obj, _WireTap) and (obj.sent or obj.received)
        )


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    handler = HANDLERS[job["handler"]]
    process = CrawlerProcess(
        {
            "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
            "DOWNLOAD_HANDLERS": {"http": handler, "https": handler},
            "DOWNLOADER_MIDDLEWARES": {
                AttemptRecorder: 950,
                "scrapy.downloadermiddlewares.cookies.CookiesMiddleware": None,
                "spiders.middlewares.OfflineCookiesMiddleware": 700,
            },
            "USER_AGENT": "linkarchive-wire-test/1",
            "ROBOTSTXT_OBEY": False,
            "TELNETCONSOLE_ENABLED": False,
            "LOG_LEVEL": "WARNING",
            "RETRY_TIMES": 1,
            "RETRY_HTTP_CODES": [500],
            "DOWNLOAD_TIMEOUT": 20,
            "CONCURRENT_REQUESTS": 16,
            "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
            "AUTOTHROTTLE_ENABLED": False,
        }
    )
    process.crawl(WireSpider, job=job)
    process.start()
    out = {
        "attempts": RESULTS.attempts,
        "final": RESULTS.final,
        "leaked_taps": job.get("leaked_taps"),
    }
    Path(job["output"]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
