"""Item pipelines: every crawl item becomes a crawl-context metadata record in the WARC."""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from pipeline.crawlcontext import build_context
from spiders.warcstore import WarcStore


class WarcMetadataPipeline:
    """Write each item as a ``metadata`` record that refers to its response."""

    def __init__(self, store: WarcStore, run_id: int | None, mode: str = "crawl") -> None:
        self.store = store
        self.run_id = run_id
        self.mode = mode

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WarcMetadataPipeline:
        if not crawler.settings.getbool("LINKARCHIVE_WARC_ENABLED", True):
            raise NotConfigured
        settings = crawler.settings
        return cls(
            WarcStore.from_crawler(crawler),
            settings.getint("LINKARCHIVE_RUN_ID"),
            settings.get("LINKARCHIVE_CRAWL_MODE", "crawl"),
        )

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        chain = list(item.get("chain") or [])
        context = build_context(
            run_id=self.run_id,
            link=item["link"],
            role=item["role"],
            url=item["url"],
            chain=chain,
            # A check's page-only fetch says so: it never becomes the link's capture.
            outcome={**item["outcome"], "mode": "check"}
            if item.get("outcome") and self.mode == "check"
            else item.get("outcome"),
            metadata=item.get("metadata"),
            error=item.get("error"),
            rendered=item.get("rendered"),
        )
        self.store.write_context(
            item.get("final_url") or item["url"], context, chain[-1] if chain else None
        )
        return item
