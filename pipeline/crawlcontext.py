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

ROLES = ("page", "gallery_page", "image", "requisite", "media")
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
) -> dict[str, Any]:
    """The JSON payload of one metadata record.

    ``chain`` lists the WARC-Record-IDs of the responses that led to this one (redirects,
    retried attempts), the last being the response the record refers to.
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
    return context
