"""The crawl-context schema shared by the crawler (writer) and the indexer (reader).

For every archived response the crawler writes a WARC ``metadata`` record whose JSON
payload follows this schema, so the WARC files alone say which link, run and role each
capture belongs to and what was extracted from it.
"""

from __future__ import annotations

from typing import Any

METADATA_FORMAT = "linkarchive/crawl-context"  # the "format" key of our metadata records
METADATA_VERSION = 1
RUN_FIELD = "linkarchive-run"  # the warcinfo field naming the crawl run
SEED_FORMAT = "linkarchive/seed-import"  # the "format" key of an archived seed import
# The "format" key of a check's judgement of one link (pipeline/linkcheck/history.py).
CHECK_FORMAT = "linkarchive/link-check"
# The "format" key of a browser capture's metadata record: browser, version, viewport,
# user agent, behaviours run, and every exchange the page made (spiders/browser/service.py).
BROWSER_FORMAT = "linkarchive/browser-capture"
# The "format" key of a video's metadata record: yt-dlp's info JSON (spiders/browser/video.py).
VIDEO_FORMAT = "linkarchive/video"

ROLES = ("page", "gallery_page", "image", "requisite", "media", "plain_page")
# A browser capture's own records (``rendered`` in a page's context), as capture roles.
RENDERED_ROLES = {"screenshot": "screenshot", "dom": "dom", "text": "text", "video": "video"}
# Their WARC-Target-URIs: urn:view:<page URL> (Browsertrix's screenshot convention, shown by
# ReplayWeb.page), urn:dom:<page URL>, urn:text:<page URL>. Indexed as captures.
# urn:video:<page URL> is a video yt-dlp fetched in pieces, stored whole.
RENDERED_URNS = ("urn:view:", "urn:dom:", "urn:text:", "urn:video:")
PAGE_ROLES = ("page", "gallery_page")


def build_context(
    *,
    run_id: int | None,
    link: dict[str, Any],
    role: str,
    url: str,
    chain: list[str],
    outcome: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    error: str | None = None,
    rendered: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON payload of one metadata record.

    ``chain`` lists the WARC-Record-IDs of the responses that led to this one (redirects,
    retried attempts), the last being the response the record refers to. ``rendered``
    (browser captures) names why a browser rendered the page, the behaviours run and the
    record ids of its screenshot, DOM, text and browser metadata records.
    """
    context: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "version": METADATA_VERSION,
        "run_id": run_id,
        "link_id": link.get("link_id"),
        "role": role,
        "url": url,
        "chain": chain,
        "link": link,
    }
    if outcome is not None:
        context["outcome"] = outcome
    if metadata is not None:
        context["metadata"] = metadata
    if error is not None:
        context["error"] = error
    if rendered is not None:
        context["rendered"] = rendered
    return context
