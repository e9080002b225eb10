"""The spider: fetch each curated link and what is needed to see it again.

Scope: the link itself (following redirects), the page's requisites (images, stylesheets,
scripts, and what stylesheets import), the plain media files it embeds, and for photo
galleries the gallery's own pagination and every full-size image. Nothing else.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from pipeline.linkcheck.classify import blocking_wall, classify
from pipeline.pagestructure import (
    find_css_requisites,
    find_media,
    find_requisites,
    parse_gallery,
    parse_html,
)
from pipeline.walls import PageSignals, browser_reason, on_platform
from pipeline.walls import signals as page_signals
from spiders.browser.proxy import Exchange
from spiders.browser.service import MODES, BrowserCapture, BrowserService
from spiders.browser.video import VideoFetcher, VideoResult
from spiders.extensions import disk_guard
from spiders.failures import describe
from spiders.wire import TRUNCATED_FLAG

# Page requests hand every final status to the callback (a 404 is an outcome to record),
# except redirects, which RedirectMiddleware must still follow.
FINAL_STATUSES = [s for s in range(100, 600) if s not in (301, 302, 303, 307, 308)]
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class _Asset:
    """An asset fetched once per crawl, however many links need it."""

    role: str
    waiting: list[dict[str, Any]] = field(default_factory=list)
    attached: set[int] = field(default_factory=set)  # link ids already given this asset
    done: dict[str, Any] | None = None  # the item fields once fetched
    children: list[str] = field(default_factory=list)  # what a stylesheet imports


def _content_type(response: Response) -> str:
    raw = response.headers.get("Content-Type") or b""
    return raw.decode("latin-1").split(";", 1)[0].strip().lower()


def _outcome(link: dict[str, Any], response: Response) -> dict[str, Any]:
    """A page's outcome: its status by the one classification crawls and checks share."""
    content_type = response.headers.get("Content-Type", b"").decode("latin-1") or None
    state, _ = classify(
        original_url=link["url"],
        status=response.status,
        final_url=response.url,
        body=response.body,
        content_type=content_type,
        error=None,
        last=None,
    )
    error = blocking_wall(response.status, response.body, content_type) or (
        None if 200 <= response.status < 300 else f"HTTP {response.status}"
    )
    if "dataloss" in response.flags:
        state = "error"
        error = ("the server broke off the response; the part received is archived "
                 "(WARC-Truncated: disconnect)")  # fmt: skip
    elif TRUNCATED_FLAG in response.flags and error is None:
        error = ("archived up to LINKARCHIVE_ARCHIVE_MAXSIZE only: the response is longer "
                 "(WARC-Truncated: length)")  # fmt: skip
    return {"status": state, "http_status": response.status, "final_url": response.url,
            "error": error}  # fmt: skip


def _browser_outcome(link: dict[str, Any], capture: BrowserCapture) -> dict[str, Any]:
    """A link's outcome from its browser capture, classified like a plain fetch from what
    the browser rendered (its DOM and text)."""
    page, rendered = capture.page, capture.rendered
    final_url = page.url if page else None
    if capture.error or page is None or page.status is None:
        return {"status": "error", "http_status": page.status if page else None,
                "final_url": final_url, "error": capture.error}  # fmt: skip
    body = rendered.dom.encode("utf-8") if rendered.dom is not None else None
    state, _ = classify(
        original_url=link["url"],
        status=page.status,
        final_url=final_url,
        body=body,
        content_type="text/html",
        error=None,
        last=None,
        text=rendered.text,
    )
    error = blocking_wall(page.status, body, "text/html", rendered.text) or (
        None if 200 <= page.status < 300 else f"HTTP {page.status}"
    )
    return {"status": state, "http_status": page.status, "final_url": final_url, "error": error}


def _exchange_role(content_type: str) -> str:
    major = content_type.split("/", 1)[0].strip().lower()
    return "media" if major in ("video", "audio") else "requisite"


def _exchange_items(link: dict[str, Any], exchanges: list[Exchange]) -> Iterator[dict[str, Any]]:
    """Context items tying what a browser or yt-dlp fetched for a link to it."""
    for exchange in exchanges:
        if exchange.record_id:
            yield {
                "link": link,
                "role": _exchange_role(exchange.content_type),
                "url": exchange.url,
                "final_url": exchange.url,
                "chain": [exchange.record_id],
            }


class LinkSpider(scrapy.Spider):
    """Archive the links of one crawl job (see ``spiders.run``)."""

    name = "links"

    def __init__(self, job: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.job = job
        self.links_total = job.get("links_total", len(job.get("links", ())))
        # Recently used assets, oldest first; bounded by LINKARCHIVE_ASSET_MEMORY.
        self._assets: OrderedDict[str, _Asset] = OrderedDict()
        self._gallery_pages: dict[int, set[str]] = {}
        self.browser: BrowserService | None = None
        self.video: VideoFetcher | None = None
        self.browser_mode = "never"

    def _start_browser(self) -> None:
        """The process's browser, unless this crawl never uses one (a check, ``never``),
        and yt-dlp for video hosts (``LINKARCHIVE_VIDEO``; not in checks)."""
        self.platforms = self.settings.getlist("LINKARCHIVE_BROWSER_HOSTS")
        self.video_hosts = self.settings.getlist("LINKARCHIVE_VIDEO_HOSTS")
        if self.settings.getbool("LINKARCHIVE_VIDEO") and self.job.get("mode") != "check":
            self.video = VideoFetcher.from_crawler(self.crawler)
        mode = self.job.get("browser") or self.settings.get("LINKARCHIVE_BROWSER", "auto")
        if mode not in MODES:
            raise ValueError(f"browser mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.browser_mode = "never" if self.job.get("mode") == "check" else mode
        try:
            self.browser = BrowserService.from_crawler(self.crawler, self.browser_mode)
        except NotConfigured:
            return
        self.crawler.signals.connect(self._close_browser, signal=signals.spider_closed)

    async def _close_browser(self) -> None:
        if self.browser is not None:
            await self.browser.close()

    async def start(self) -> AsyncIterator[scrapy.Request]:
        self._start_browser()
        for link in self._links():
            yield self._page_request(link, link["url"], "page")

    def _links(self) -> Iterator[dict[str, Any]]:
        """The job's links, from its JSON Lines file as the crawl asks for them."""
        if "links_file" not in self.job:
            yield from self.job["links"]
            return
        with Path(self.job["links_file"]).open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)

    def _forget_old_assets(self) -> None:
        """Keep at most LINKARCHIVE_ASSET_MEMORY assets; those still in flight stay."""
        limit = self.settings.getint("LINKARCHIVE_ASSET_MEMORY", 20_000)
        for _ in range(len(self._assets)):
            if len(self._assets) <= limit:
                return
            url, asset = next(iter(self._assets.items()))
            if asset.done is None or asset.waiting:
                self._assets.move_to_end(url)
            else:
                del self._assets[url]

    # --- requests -----------------------------------------------------------------------
    def _page_request(self, link: dict[str, Any], url: str, role: str) -> scrapy.Request:
        # A link's gallery pages and assets go before new links (priority 1): each link is
        # finished soon after it is started, so what waits in the scheduler stays small
        # however long the crawl, and a link's capture is whole when it is indexed.
        return scrapy.Request(
            url,
            callback=self.parse_page,
            errback=self.failed,
            dont_filter=True,
            priority=0 if role == "page" else 1,
            meta={
                "la_link": link,
                "la_role": role,
                "handle_httpstatus_list": FINAL_STATUSES,
                "download_slot": urlsplit(url).netloc,
            },
        )

    def _asset_requests(
        self, link: dict[str, Any], urls: list[str], role: str
    ) -> Iterator[scrapy.Request | dict[str, Any]]:
        """Attach ``link`` to each asset, fetching an asset only the first time it is seen."""
        for url in urls:
            asset = self._assets.get(url)
            if asset is not None:
                self._assets.move_to_end(url)
            if asset is None:
                asset = self._assets[url] = _Asset(role=role, waiting=[link])
                self._forget_old_assets()
                asset.attached.add(link["link_id"])
                yield scrapy.Request(
                    url,
                    callback=self.parse_asset,
                    errback=self.failed,
                    dont_filter=True,  # de-duplicated here, per URL, across links
                    priority=1,  # before new links: a page's assets never pile up behind
                    meta={"la_link": link, "la_role": role, "download_slot": urlsplit(url).netloc},
                )
            elif link["link_id"] in asset.attached:
                continue
            else:
                asset.attached.add(link["link_id"])
                if asset.done is None:
                    asset.waiting.append(link)
                else:
                    yield {**asset.done, "link": link, "role": role}
                    yield from self._asset_requests(link, asset.children, "requisite")

    # --- callbacks ----------------------------------------------------------------------
    async def parse_page(
        self, response: Response
    ) -> AsyncIterator[scrapy.Request | dict[str, Any]]:
        """A link's page or a gallery page: record it, then fetch what it needs (a page
        that needs a browser is rendered, and what the browser fetched is recorded)."""
        link, role = response.meta["la_link"], response.meta["la_role"]
        content_type = _content_type(response)
        item: dict[str, Any] = {
            "link": link,
            "role": role,
            "url": response.request.url if response.request else response.url,
            "final_url": response.url,
            "chain": response.meta.get("la_records", []),
        }
        ok = 200 <= response.status < 300
        html = isinstance(response, TextResponse) and content_type in HTML_TYPES
        page = page_signals(response.body) if html and role == "page" else None
        reason = self._browser_reason(response, role, page)
        capture = None
        if reason is not None:
            capture = await self.browser.capture(link["url"])  # type: ignore[union-attr]
            if capture.rendered.unavailable and self.browser_mode != "always":
                self.logger.warning("no browser for %s: %s", link["url"], capture.error)
                capture = None
        video = await self._video(link, role, response, capture)
        if capture is not None:
            item["role"] = "plain_page"  # what a plain fetch got, kept beside the render
            yield item
            for request_or_item in self._browser_items(link, capture, reason or "", video):
                yield request_or_item
            return
        if role == "page":  # its metadata is extracted when indexed (pipeline.indexer)
            item["outcome"] = _outcome(link, response)
            if video is not None:
                item["rendered"] = video.context()
        yield item
        for video_item in _exchange_items(link, video.exchanges if video else []):
            yield video_item
        if self.job.get("mode") == "check":  # a check archives the page alone
            return
        if not ok or not html:
            return
        soup, base = parse_html(response.text), response.url  # parsed once for all three
        fetched = {e.url for e in video.exchanges if e.status == 200} if video else set()
        for request_or_item in self._page_assets(link, soup, base, fetched=fetched):
            yield request_or_item

    def _browser_reason(
        self, response: Response, role: str, page: PageSignals | None
    ) -> str | None:
        """Why this page is rendered in a browser, or None for the plain capture alone."""
        if self.browser is None or role != "page" or page is None:
            return None
        if self.browser_mode == "always":
            return "always"
        if not (200 <= response.status < 300 or response.status in (401, 403)):
            return None
        host = urlsplit(response.url).hostname or ""
        return browser_reason(page, host, self.platforms)

    async def _video(
        self,
        link: dict[str, Any],
        role: str,
        response: Response,
        capture: BrowserCapture | None,
    ) -> VideoResult | None:
        """The link's video through yt-dlp, for pages on video hosts (not in checks)."""
        ok = 200 <= response.status < 300 or capture is not None
        if self.video is None or role != "page" or not ok:
            return None
        if not on_platform(urlsplit(link["url"]).hostname or "", self.video_hosts):
            return None
        chain = capture.chain if capture is not None else response.meta.get("la_records", [])
        result = await self.video.fetch(link["url"], chain[-1] if chain else None)
        if result.error:
            self.logger.warning("%s: %s", link["url"], result.error)
        return result

    def _browser_items(
        self,
        link: dict[str, Any],
        capture: BrowserCapture,
        reason: str,
        video: VideoResult | None = None,
    ) -> Iterator[scrapy.Request | dict[str, Any]]:
        """Context items for what the browser fetched and made, then what it left whole:
        media it only fetched in ranges (or not at all), a gallery's images and pages."""
        yield from _exchange_items(link, capture.others + (video.exchanges if video else []))
        outcome = _browser_outcome(link, capture)
        rendered = {"reason": reason, **capture.records,
                    "behaviours": capture.rendered.behaviours}  # fmt: skip
        if video is not None:
            rendered.update(video.context())
        yield {
            "link": link,
            "role": "page",
            "url": link["url"],
            "final_url": outcome["final_url"] or link["url"],
            "chain": capture.chain,
            "outcome": outcome,
            "rendered": rendered,
        }
        if capture.rendered.dom is None or capture.page is None:
            return
        whole = {e.url for e in capture.others if e.status == 200}
        media = [url for url in capture.rendered.media if url not in whole]
        yield from self._asset_requests(link, media, "media")
        if link["kind"] == "photo_gallery":
            yield from self._page_assets(
                link, parse_html(capture.rendered.dom), capture.page.url, requisites=False
            )

    def _page_assets(
        self,
        link: dict[str, Any],
        soup: Any,
        base: str,
        requisites: bool = True,
        fetched: Collection[str] = (),
    ) -> Iterator[scrapy.Request | dict[str, Any]]:
        """A page's requisites and media (but those yt-dlp ``fetched`` whole), and for a
        photo gallery its images and pages."""
        if requisites:
            yield from self._asset_requests(link, find_requisites(soup, base), "requisite")
            media = [url for url in find_media(soup, base) if url not in fetched]
            yield from self._asset_requests(link, media, "media")
        if link["kind"] == "photo_gallery":
            gallery = parse_gallery(soup, base)
            yield from self._asset_requests(link, gallery.images, "image")
            seen = self._gallery_pages.setdefault(link["link_id"], {link["url"], base})
            limit = self.settings.getint("LINKARCHIVE_GALLERY_MAX_PAGES", 50)
            for url in gallery.next_pages:
                if url not in seen and len(seen) < limit:
                    seen.add(url)
                    yield self._page_request(link, url, "gallery_page")

    def parse_asset(self, response: Response) -> Iterator[scrapy.Request | dict[str, Any]]:
        """An image, stylesheet, script or media file: record it for every link needing it."""
        url = response.request.url if response.request else response.url
        asset = self._assets[url]
        asset.done = {"url": url, "final_url": response.url,
                      "chain": response.meta.get("la_records", [])}  # fmt: skip
        if _content_type(response) == "text/css" and isinstance(response, TextResponse):
            asset.children = find_css_requisites(response.text, response.url)
        waiting, asset.waiting = asset.waiting, []
        for link in waiting:
            yield {**asset.done, "link": link, "role": asset.role}
            yield from self._asset_requests(link, asset.children, "requisite")

    def failed(self, failure: Failure) -> Iterator[dict[str, Any]]:
        """A request that got no usable response: recorded, never fatal."""
        request = failure.request  # type: ignore[attr-defined]
        link, role = request.meta["la_link"], request.meta["la_role"]
        guard = disk_guard(self.crawler)
        if guard is not None and guard.failed(failure.value):
            return  # our disk, not the link: no outcome, `crawl --resume` fetches it
        if failure.check(HttpError):  # an asset's 4xx/5xx: archived, say so
            response = failure.value.response
            error = f"HTTP {response.status}"
            chain = response.meta.get("la_records", [])
        else:
            error = describe(failure.value, request)
            chain = request.meta.get("la_records", [])
        base = {"url": request.url, "chain": chain, "error": error}
        if role in ("page", "gallery_page"):
            item = {**base, "link": link, "role": role}
            if role == "page":
                item["outcome"] = {
                    "status": classify(
                        original_url=link["url"],
                        status=None,
                        final_url=None,
                        body=None,
                        content_type=None,
                        error=error,
                        last=None,
                    )[0],  # fmt: skip
                    "http_status": None,
                    "final_url": None,
                    "error": error,
                }
            yield item
            return
        asset = self._assets.get(request.url)
        waiting = asset.waiting if asset else [link]
        if asset:
            asset.done, asset.waiting = base, []
        for waiter in waiting:
            yield {**base, "link": waiter, "role": role}
