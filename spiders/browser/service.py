"""Browser captures inside a crawl process: render a link's page in Chromium through a
recording proxy, and write what it made into the crawl's WARC files.

For one page, in the crawl's WARC store:

* every request and response the browser made (the page, its redirects, XHR/fetch, images,
  media, ranged video requests), wire-exact, through :class:`~spiders.browser.proxy.RecordingProxy`;
* ``resource`` records ``urn:view:<url>`` (full-page screenshot, PNG), ``urn:dom:<url>``
  (the rendered DOM, HTML) and ``urn:text:<url>`` (its text), each ``WARC-Concurrent-To``
  the page's response;
* a ``metadata`` record (``linkarchive/browser-capture``) naming the browser, its version,
  the viewport, the user agent, the behaviours run and the exchanges' record ids.

The spider then writes the crawl-context records (role ``page`` with the ``rendered`` ids,
and one per other exchange), so the indexer ties them to the link.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from archive import record_id
from pipeline.crawlcontext import BROWSER_FORMAT
from pipeline.netpolicy import AddressPolicy, address_policy
from spiders.browser.proxy import Exchange, RecordingProxy
from spiders.browser.render import Browser, BrowserOptions, Rendered
from spiders.warcstore import WarcStore

logger = logging.getLogger(__name__)

MODES = ("auto", "always", "never")
#: The most bytes of a rendered DOM or text record; longer ones are cut and marked so.
RENDERED_MAX_BYTES = 64 << 20


@dataclass
class BrowserCapture:
    """One page's browser capture, as written."""

    url: str
    rendered: Rendered
    chain: list[str]  # response record ids from the link's URL to the page (redirects)
    page: Exchange | None  # the page's own exchange (last of the chain)
    others: list[Exchange] = field(default_factory=list)  # everything else the page loaded
    records: dict[str, str] = field(default_factory=dict)  # screenshot/dom/text/info -> id

    @property
    def error(self) -> str | None:
        """Why the capture failed (None: the page was rendered)."""
        if self.rendered.error:
            return self.rendered.error
        if self.page is None:
            return "browser: the page's response was not recorded"
        return None


def browser_options(settings: Any) -> BrowserOptions:
    """Options from the crawl's settings (``LINKARCHIVE_BROWSER_*``)."""
    states: dict[str, str] = {}
    folder = settings.get("LINKARCHIVE_BROWSER_STATE_DIR")
    if folder and Path(folder).is_dir():
        # <host>.json: a Playwright storage state (cookies, local storage) for that host.
        states = {p.stem.lower(): str(p) for p in Path(folder).glob("*.json")}
    return BrowserOptions(
        executable=settings.get("LINKARCHIVE_BROWSER_EXECUTABLE"),
        width=settings.getint("LINKARCHIVE_BROWSER_WIDTH"),
        height=settings.getint("LINKARCHIVE_BROWSER_HEIGHT"),
        page_seconds=settings.getfloat("LINKARCHIVE_BROWSER_PAGE_SECONDS"),
        scroll_seconds=settings.getfloat("LINKARCHIVE_BROWSER_SCROLL_SECONDS"),
        max_height=settings.getint("LINKARCHIVE_BROWSER_MAX_HEIGHT"),
        max_rss=settings.getint("LINKARCHIVE_BROWSER_MAX_RSS"),
        user_agent=settings.get("LINKARCHIVE_BROWSER_USER_AGENT") or None,
        storage_state=states,
    )


@dataclass
class ProxyFactory:
    """Recording proxies for one crawl process, writing into its WARC store."""

    store: WarcStore
    allowed_hosts: frozenset[str]
    max_size: int
    budget: int
    spool_dir: str | None
    addresses: AddressPolicy = AddressPolicy()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ProxyFactory:
        """Limits and the host allowlist from the crawl's settings."""
        settings = crawler.settings
        hosts = settings.getlist("LINKARCHIVE_ALLOWED_HOSTS")
        return cls(
            WarcStore.from_crawler(crawler),
            frozenset(h.strip().lower() for h in hosts if h.strip()),
            max_size=settings.getint("LINKARCHIVE_ARCHIVE_MAXSIZE"),
            budget=settings.getint("LINKARCHIVE_BROWSER_PAGE_BYTES"),
            spool_dir=settings.get("LINKARCHIVE_WARC_DIR"),
            addresses=address_policy(settings.get("LINKARCHIVE_ALLOW_ADDRESSES") or ""),
        )

    def _allow(self, host: str) -> bool:
        return not self.allowed_hosts or host in self.allowed_hosts

    def __call__(self, max_size: int | None = None) -> RecordingProxy:
        """A new proxy (not yet started) whose exchanges go into the crawl's WARC files;
        ``max_size`` lowers the archive limit per response (a video's size limit)."""
        return RecordingProxy(
            lambda url, wire: self.store.write_wire(url, wire),
            allow=self._allow,
            addresses=self.addresses,
            max_size=min(self.max_size, max_size or self.max_size),
            budget=self.budget,
            spool_dir=self.spool_dir,
        )


class BrowserService:
    """The crawl process's browser: built from settings, ``NotConfigured`` when off."""

    def __init__(
        self, store: WarcStore, browser: Browser, proxies: ProxyFactory, per_host: int = 1
    ) -> None:
        self.store = store
        self.browser = browser
        self.proxies = proxies
        # At most ``per_host`` pages of a host at a time: the crawl unit owns its hosts, so
        # this is the browser's politeness per host (a page's own requests go out in
        # parallel, as a visitor's would). host -> (its semaphore, pages using it).
        self.per_host = per_host
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler, mode: str) -> BrowserService:
        """The crawl's browser service (one per process), or NotConfigured for ``never``."""
        if mode == "never":
            raise NotConfigured
        settings = crawler.settings
        browser = Browser(
            browser_options(settings), pages=settings.getint("LINKARCHIVE_BROWSER_PAGES")
        )
        return cls(
            WarcStore.from_crawler(crawler),
            browser,
            ProxyFactory.from_crawler(crawler),
            per_host=max(1, settings.getint("LINKARCHIVE_BROWSER_PAGES_PER_HOST", 1)),
        )

    async def capture(self, url: str) -> BrowserCapture:
        """Render ``url`` through a recording proxy of its own and archive the result."""
        host = urlsplit(url).hostname or ""
        lock, users = self._hosts.get(host) or (asyncio.Semaphore(self.per_host), 0)
        self._hosts[host] = (lock, users + 1)
        try:
            async with lock:
                proxy = await self.proxies().start()
                try:
                    rendered = await self.browser.render(url, proxy.url, host)
                finally:
                    await proxy.close()
        finally:
            lock, users = self._hosts[host]
            if users > 1:
                self._hosts[host] = (lock, users - 1)
            else:
                del self._hosts[host]  # no page waits for this host: memory stays flat
        chain, page = _page_chain(url, proxy.exchanges)
        in_chain = {id(e) for e in chain}
        capture = BrowserCapture(
            url=url,
            rendered=rendered,
            chain=[e.record_id for e in chain if e.record_id],
            page=page,
            others=[e for e in proxy.exchanges if id(e) not in in_chain and e.record_id],
        )
        if page is not None and page.record_id and rendered.error is None:
            capture.records = self._write_rendered(page, rendered)
        self._write_info(capture, proxy.exchanges)
        return capture

    def _write_rendered(self, page: Exchange, rendered: Rendered) -> dict[str, str]:
        url = page.url
        parts = [
            ("screenshot", f"urn:view:{url}", rendered.screenshot, "image/png"),
            ("dom", f"urn:dom:{url}", (rendered.dom or "").encode("utf-8"),
             "text/html; charset=utf-8"),
            ("text", f"urn:text:{url}", (rendered.text or "").encode("utf-8"),
             "text/plain; charset=utf-8"),
        ]  # fmt: skip
        records = {}
        built = []
        for name, target, body, content_type in parts:
            if body is None:
                continue
            extra = None
            if len(body) > RENDERED_MAX_BYTES:  # a DOM grown without end by a script
                body, extra = body[:RENDERED_MAX_BYTES], {"WARC-Truncated": "length"}
            record = self.store.factory.resource(
                target, body, content_type, concurrent_to=page.record_id, extra=extra
            )
            records[name] = record_id(record)
            built.append(record)
        self.store.writer.write_many(built)
        return records

    def _write_info(self, capture: BrowserCapture, exchanges: list[Exchange]) -> None:
        info = {
            "format": BROWSER_FORMAT,
            "version": 1,
            "url": capture.url,
            "final_url": capture.rendered.final_url,
            **capture.rendered.info,
            "behaviours": capture.rendered.behaviours,
            "seconds": capture.rendered.seconds,
            "error": capture.error,
            "records": capture.records,
            "exchanges": [
                {
                    "url": e.url,
                    "method": e.method,
                    "status": e.status,
                    "record": e.record_id,
                    **({"error": e.error} if e.error else {}),
                }
                for e in exchanges
            ],  # fmt: skip
        }
        payload = json.dumps(info, ensure_ascii=False).encode("utf-8")
        record = self.store.factory.metadata(
            capture.url, payload, refers_to=capture.chain[-1] if capture.chain else None
        )
        self.store.writer.write(record)
        capture.records["info"] = record_id(record)

    async def close(self) -> None:
        """Close Chromium."""
        await self.browser.close()


def _page_chain(url: str, exchanges: list[Exchange]) -> tuple[list[Exchange], Exchange | None]:
    """The exchanges from ``url`` through its redirects to the page, and the page's own."""
    chain: list[Exchange] = []
    current, seen = url, set()
    while current not in seen:
        seen.add(current)
        found = next(
            (e for e in exchanges if e.url == current and e.method == "GET" and e.status), None
        )
        if found is None:
            break
        chain.append(found)
        if found.status in (301, 302, 303, 307, 308) and found.location:
            current = urljoin(found.url, found.location)
            continue
        return chain, found
    return chain, None
