"""A bare Scrapy spider over a URL list: the baseline without WARC writing or a catalog.

``python -m bench.barescrapy URLS.txt [--stats STATS.json]`` fetches each listed page,
finds ``img[src]`` and ``link[rel=stylesheet][href]`` with Scrapy's selectors and fetches
those too (Scrapy's default dupefilter drops repeats, as ``wget -p`` does). Politeness
(concurrency, AutoThrottle, delay, robots.txt) and the user agent come from the project's
``settings`` module, so they stay what ``linkarchive crawl`` uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response, TextResponse

import settings as project

SHARED = (
    "USER_AGENT",
    "ROBOTSTXT_OBEY",
    "CONCURRENT_REQUESTS",
    "CONCURRENT_REQUESTS_PER_DOMAIN",
    "DOWNLOAD_DELAY",
    "AUTOTHROTTLE_ENABLED",
    "AUTOTHROTTLE_START_DELAY",
    "AUTOTHROTTLE_MAX_DELAY",
    "AUTOTHROTTLE_TARGET_CONCURRENCY",
    "DOWNLOAD_TIMEOUT",
    "RETRY_TIMES",
    "LOG_LEVEL",
    "TWISTED_REACTOR",
    "TELNETCONSOLE_ENABLED",
)


def bare_settings() -> dict[str, Any]:
    """The project's politeness settings, and nothing of its archiving components."""
    return {name: getattr(project, name) for name in SHARED}


class BareSpider(scrapy.Spider):
    """Fetch pages and their images and stylesheets; keep nothing."""

    name = "bare"

    def __init__(self, urls: list[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.urls = urls

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[scrapy.Request]:
        if not isinstance(response, TextResponse):
            return
        found = response.css("img::attr(src)").getall()
        found += response.css("link[rel=stylesheet]::attr(href)").getall()
        for href in found:
            yield response.follow(href, callback=self.asset, priority=-1)

    def asset(self, response: Response) -> None:
        """Downloaded; nothing to keep."""


def main(argv: list[str] | None = None) -> int:
    """Crawl the URL list; 0 if Scrapy finished normally."""
    parser = argparse.ArgumentParser(prog="python -m bench.barescrapy")
    parser.add_argument("urls", type=Path, help="a text file, one URL a line")
    parser.add_argument("--stats", type=Path, help="write Scrapy's stats here as JSON")
    args = parser.parse_args(argv)
    urls = [line.strip() for line in args.urls.read_text().splitlines() if line.strip()]
    process = CrawlerProcess(bare_settings())
    crawler = process.create_crawler(BareSpider)
    process.crawl(crawler, urls=urls)
    process.start()
    stats = crawler.stats.get_stats() if crawler.stats else {}
    if args.stats:
        args.stats.write_text(json.dumps(stats, default=str), encoding="utf-8")
    return 0 if stats.get("finish_reason") == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
