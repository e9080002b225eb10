"""Scrapy extensions of a long-lived crawl process: progress per page, WARC files that
close while the crawl runs (so captures are indexed, and searchable, as it goes), and a
stop before the disk is full."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro
from twisted.internet.task import LoopingCall

from archive.space import free_bytes, is_disk_full
from spiders.warcstore import WarcStore

logger = logging.getLogger(__name__)

# Page outcomes that count as failures in the progress figures.
FAILED_OUTCOMES = ("error", "dead")


class CrawlProgress:
    """Write this process's progress to ``LINKARCHIVE_PROGRESS_FILE`` twice a second.

    One small JSON document, replaced atomically: links given, pages done (a page is done
    when its outcome is written), failed pages, requests, responses, wire bytes received,
    seconds elapsed, and whether the crawl has finished. Readers sum the files of a run's
    units (``pipeline.progress``).
    """

    def __init__(self, crawler: Crawler, path: Path, interval: float) -> None:
        self.crawler = crawler
        self.path = path
        self.interval = interval
        self.started = time.monotonic()
        self.pages = 0
        self.pages_failed = 0
        self.links = 0
        self._loop = LoopingCall(self.write)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlProgress:
        path = crawler.settings.get("LINKARCHIVE_PROGRESS_FILE")
        if not path:
            raise NotConfigured
        ext = cls(crawler, Path(path), crawler.settings.getfloat("LINKARCHIVE_PROGRESS_INTERVAL"))
        crawler.signals.connect(ext.opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(ext.closed, signal=signals.spider_closed)
        return ext

    def opened(self, spider: Any) -> None:
        self.links = int(getattr(spider, "links_total", 0))
        self._loop.start(self.interval, now=True)

    def item_scraped(self, item: dict[str, Any]) -> None:
        outcome = item.get("outcome")
        if item.get("role") == "page" and outcome is not None:
            self.pages += 1
            self.pages_failed += outcome.get("status") in FAILED_OUTCOMES

    def closed(self, spider: Any) -> None:
        if self._loop.running:
            self._loop.stop()
        self.write(finished=True)

    def snapshot(self, finished: bool = False) -> dict[str, Any]:
        """The figures as they stand."""
        stats = self.crawler.stats
        get = stats.get_value if stats is not None else (lambda _k, d=0: d)
        return {
            "pid": os.getpid(),
            "links": self.links,
            "pages": self.pages,
            "pages_failed": self.pages_failed,
            "requests": get("downloader/request_count", 0),
            "responses": get("response_received_count", 0),
            "bytes": get("downloader/response_bytes", 0),
            "elapsed": round(time.monotonic() - self.started, 3),
            "finished": finished,
        }

    def write(self, finished: bool = False) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.snapshot(finished)), encoding="utf-8")
        tmp.replace(self.path)


class WarcRotation:
    """Close the WARC file being written once it is old enough, so the flow indexes it.

    Only closed files are indexed (no catalog row may point into an unfinished file). A
    file closes when it is a tenth of the crawl's age old, at least 1 s and at most
    ``LINKARCHIVE_WARC_ROTATE_SECONDS``: a short crawl is indexed almost as it goes (little
    is left to index when it ends), a long one writes a file a minute, not thousands. It
    also closes at ``LINKARCHIVE_WARC_ROTATE_RECORDS`` records: the indexer holds a file's
    rows in memory, so a fast crawl's files must not grow with its length.
    0 seconds turns it off: files then close at the size limit and at the end.
    """

    def __init__(self, store: WarcStore, seconds: float, records: int | None = None) -> None:
        self.store = store
        self.seconds = seconds
        self.records = records
        self.started = time.monotonic()
        self._loop = LoopingCall(self.rotate)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WarcRotation:
        seconds = crawler.settings.getfloat("LINKARCHIVE_WARC_ROTATE_SECONDS")
        if seconds <= 0 or not crawler.settings.getbool("LINKARCHIVE_WARC_ENABLED", True):
            raise NotConfigured
        records = crawler.settings.getint("LINKARCHIVE_WARC_ROTATE_RECORDS") or None
        ext = cls(WarcStore.from_crawler(crawler), seconds, records)
        crawler.signals.connect(ext.opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.closed, signal=signals.spider_closed)
        return ext

    def opened(self, spider: Any) -> None:
        self.started = time.monotonic()
        self._loop.start(min(0.5, self.seconds), now=False)

    def closed(self, spider: Any) -> None:
        if self._loop.running:
            self._loop.stop()

    def age_limit(self) -> float:
        """How old the current file may grow, now."""
        return min(self.seconds, max(1.0, (time.monotonic() - self.started) / 10))

    def rotate(self) -> None:
        self.store.writer.close_if_older(self.age_limit(), self.records)


class DiskSpaceGuard:
    """Stop the crawl, with reason ``disk_full``, when the WARC folder's disk has less
    than ``LINKARCHIVE_MIN_FREE_SPACE`` bytes free (checked every second), or at the first
    write that found no space (:meth:`failed`, called for any error the spider sees).

    Links not reached then get no outcome, so `crawl --resume` fetches them later; what
    was written stays whole (the WARC writer cuts a failed append away).
    """

    REASON = "disk_full"

    def __init__(self, crawler: Crawler, folder: Path, minimum: int) -> None:
        self.crawler, self.folder, self.minimum = crawler, folder, minimum
        self.stopping = False
        self._loop = LoopingCall(self.check)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DiskSpaceGuard:
        folder = crawler.settings.get("LINKARCHIVE_WARC_DIR")
        if not folder:
            raise NotConfigured
        guard = cls(crawler, Path(folder), crawler.settings.getint("LINKARCHIVE_MIN_FREE_SPACE"))
        crawler.signals.connect(guard.opened, signal=signals.spider_opened)
        crawler.signals.connect(guard.closed, signal=signals.spider_closed)
        crawler.signals.connect(guard.item_error, signal=signals.item_error)
        crawler._linkarchive_disk_guard = guard  # type: ignore[attr-defined]
        return guard

    def opened(self, spider: Any) -> None:
        self._loop.start(1.0, now=True)

    def closed(self, spider: Any) -> None:
        if self._loop.running:
            self._loop.stop()

    def check(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.minimum and free_bytes(self.folder) < self.minimum:
            self.stop(f"less than {self.minimum >> 20} MiB free")

    def failed(self, exc: BaseException) -> bool:
        """Stop the crawl if ``exc`` is a write that found no space; True if it was."""
        if not is_disk_full(exc):
            return False
        self.stop(str(exc))
        return True

    def item_error(self, item: Any, response: Any, spider: Any, failure: Any) -> None:
        self.failed(failure.value)

    def stop(self, why: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        logger.error("stopping the crawl: the disk holding %s is full (%s)", self.folder, why)
        assert self.crawler.engine is not None
        deferred_from_coro(self.crawler.engine.close_spider_async(reason=self.REASON))


def disk_guard(crawler: Crawler) -> DiskSpaceGuard | None:
    """The crawl's :class:`DiskSpaceGuard`, if it has one."""
    return getattr(crawler, "_linkarchive_disk_guard", None)
