"""Split a crawl's links into batches, one Scrapy process each, sharded by host."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit


def shard_by_host(
    links: Sequence[dict[str, Any]], *, max_batch: int, workers: int
) -> list[list[dict[str, Any]]]:
    """Batches of at most ``max_batch`` links that keep each host's links together.

    Scrapy's per-host politeness (concurrency, AutoThrottle) holds inside one process;
    keeping a host in one batch keeps it across the processes that run in parallel.
    A host with more than ``max_batch`` links is split (its batches may then overlap in
    time). There are at least ``workers`` batches when there are enough hosts, so every
    core has a crawl to run, and batches are balanced by size (largest host first).
    """
    if max_batch < 1 or workers < 1:
        raise ValueError("max_batch and workers must be at least 1")
    by_host: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for link in links:
        by_host[urlsplit(link["url"]).netloc.lower()].append(link)
    chunks = [
        items[start : start + max_batch]
        for items in by_host.values()
        for start in range(0, len(items), max_batch)
    ]
    count = max(min(workers, len(chunks)), math.ceil(len(links) / max_batch))
    batches: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for chunk in sorted(chunks, key=len, reverse=True):
        roomy = [batch for batch in batches if len(batch) + len(chunk) <= max_batch]
        if not roomy:
            roomy = [[]]
            batches.append(roomy[0])
        min(roomy, key=len).extend(chunk)
    return [batch for batch in batches if batch]
