"""The spider: fetch each curated link and what is needed to see it again.

Scope: the link itself (following redirects), the page's requisites (images, stylesheets,
scripts, and what stylesheets import), the plain media files it embeds, and for photo
galleries the gallery's own pagination and every full-size image. Nothing else.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import DNSLookupError
from twisted.python.failure import Failure

from pipeline.pagestructure import (
    find_css_requisites,
    find_media,
    find_requisites,
    parse_gallery,
    parse_html,
)

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
    status = response.status
    redirected = bool(response.meta.get("redirect_urls")) or response.url != link["url"]
    if 200 <= status < 300:
        state = "redirected" if redirected else "alive"
    elif status in (404, 410):
        state = "dead"
    else:
        state = "error"
    return {
        "status": state,
        "http_status": status,
        "final_url": response.url,
        "error": None if 200 <= status < 300 else f"HTTP {status}",
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

    async def start(self) -> AsyncIterator[scrapy.Request]:
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
    def parse_page(self, response: Response) -> Iterator[scrapy.Request | dict[str, Any]]:
        """A link's page or a gallery page: record it, then fetch what it needs."""
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
        if role == "page":  # its metadata is extracted when indexed (pipeline.indexer)
            item["outcome"] = _outcome(link, response)
        yield item
        if self.job.get("mode") == "check":  # a check archives the page alone
            return
        if not ok or not isinstance(response, TextResponse) or content_type not in HTML_TYPES:
            return
        html, base = parse_html(response.text), response.url  # parsed once for all three
        yield from self._asset_requests(link, find_requisites(html, base), "requisite")
        yield from self._asset_requests(link, find_media(html, base), "media")
        if link["kind"] == "photo_gallery":
            gallery = parse_gallery(html, base)
            yield from self._asset_requests(link, gallery.images, "image")
            seen = self._gallery_pages.setdefault(link["link_id"], {link["url"], response.url})
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
        if failure.check(HttpError):  # an asset's 4xx/5xx: archived, say so
            response = failure.value.response
            error = f"HTTP {response.status}"
            chain = response.meta.get("la_records", [])
        else:
            error = f"{failure.type.__name__}: {failure.getErrorMessage()}"
            chain = request.meta.get("la_records", [])
        base = {"url": request.url, "chain": chain, "error": error}
        if role in ("page", "gallery_page"):
            item = {**base, "link": link, "role": role}
            if role == "page":
                dead = failure.check(DNSLookupError) is not None
                item["outcome"] = {
                    "status": "dead" if dead else "error",
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
