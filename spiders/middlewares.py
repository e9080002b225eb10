"""Downloader middlewares: keep the crawl on allowed hosts, and archive every exchange."""

from __future__ import annotations

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares import cookies
from scrapy.downloadermiddlewares.cookies import CookiesMiddleware
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Response
from scrapy.utils.httpobj import urlparse_cached
from tldextract import TLDExtract

from spiders.warcstore import WarcStore


class HostAllowlistMiddleware:
    """Refuse requests to hosts outside ``LINKARCHIVE_ALLOWED_HOSTS``.

    Off (NotConfigured) when the list is empty. The demo and the tests allow loopback
    only, so a bug can never send them to the internet.
    """

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = {h.strip().lower() for h in hosts}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HostAllowlistMiddleware:
        hosts = crawler.settings.getlist("LINKARCHIVE_ALLOWED_HOSTS")
        if not hosts:
            raise NotConfigured
        return cls(hosts)

    def process_request(self, request: Request) -> None:
        host = (urlparse_cached(request).hostname or "").lower()
        if host not in self.hosts:
            raise IgnoreRequest(f"host {host!r} is not in LINKARCHIVE_ALLOWED_HOSTS")


class OfflineCookiesMiddleware(CookiesMiddleware):
    """Scrapy's cookie handling, with tldextract's bundled public-suffix list.

    Scrapy's own extractor downloads the list from the internet on first use; a crawl
    must reach only the hosts it archives (and be reproducible), so we use the snapshot.
    """

    def __init__(self, debug: bool = False) -> None:
        super().__init__(debug)
        cookies._split_domain = _OFFLINE_SPLIT


_OFFLINE_SPLIT = TLDExtract(suffix_list_urls=(), include_psl_private_domains=True)


class WarcCaptureMiddleware:
    """Write every response that comes back, with its request, to the WARC store.

    Sits at priority 950, above RedirectMiddleware (600), HttpCompressionMiddleware (590)
    and RetryMiddleware (550): it sees redirects, errors and every retried attempt, and
    bodies still content-encoded as they came over the wire. The record ids of a
    request's responses accumulate in ``meta["la_records"]`` across redirects and retries.
    """

    def __init__(self, store: WarcStore) -> None:
        self.store = store

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WarcCaptureMiddleware:
        if not crawler.settings.getbool("LINKARCHIVE_WARC_ENABLED", True):
            raise NotConfigured
        return cls(WarcStore.from_crawler(crawler))

    def process_response(self, request: Request, response: Response) -> Response:
        record = self.store.write_exchange(request, response)
        # A new list: redirect and retry requests share meta by shallow copy.
        request.meta["la_records"] = [*request.meta.get("la_records", ()), record]
        return response


class DataLossRetryMiddleware:
    """Retry a response the server broke off (flag ``dataloss``), as RetryMiddleware
    retries a failed download.

    DOWNLOAD_FAIL_ON_DATALOSS is off so that what such a response brought is archived
    (``WARC-Truncated: disconnect``, by WarcCaptureMiddleware above) instead of thrown
    away; this middleware keeps the retry that the failure would have had. The last
    attempt's cut response is what the spider sees, and its outcome says so.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DataLossRetryMiddleware:
        if not crawler.settings.getbool("RETRY_ENABLED"):
            raise NotConfigured
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Request | Response:
        if "dataloss" not in response.flags or request.meta.get("dont_retry"):
            return response
        retry = get_retry_request(
            request, spider=self.crawler.spider, reason="dataloss", stats_base_key="retry"
        )
        return retry or response
