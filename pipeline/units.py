"""Split a crawl's links into crawl units: disjoint sets of whole hosts.

A unit is what one long-lived crawl process runs from start to end, on this machine or
on a worker elsewhere (``flows.unit``). Every host belongs to exactly one unit, so
per-host politeness (concurrency, delay, AutoThrottle, robots.txt) is kept by one Scrapy
process for the whole run, whichever processes run beside it; across runs and machines,
units hold their hosts' shards (:func:`shard_of`).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit


def host_of(url: str) -> str:
    """The host name politeness is kept for (Scrapy's download slot: host and port)."""
    return urlsplit(url).netloc.lower()


# Hosts are spread over this many shards; a worker holds its unit's shards (Prefect global
# concurrency limits, one slot each) while it crawls, so two units anywhere in the cluster
# never crawl one host at once. Fixed: every machine must agree on a host's shard.
HOST_SHARDS = 256


def shard_of(host: str) -> int:
    """The shard of a host (stable across machines and Python runs)."""
    return int.from_bytes(hashlib.sha256(host.encode()).digest()[:4], "big") % HOST_SHARDS


def shard_key(url: str) -> str:
    """A :func:`plan_units` key: units disjoint in host shards, not only in hosts."""
    return str(shard_of(host_of(url)))


def plan_units(
    links: Sequence[dict[str, Any]],
    *,
    processes: int,
    unit_size: int = 5000,
    key: Callable[[str], str] = host_of,
) -> list[list[dict[str, Any]]]:
    """Host-disjoint units, balanced by number of links (largest host first).

    ``key`` groups links that must stay in one unit: a link's host by default; with
    :func:`shard_key`, its host shard (units of a cluster run, which hold their shards).

    There are ``processes`` units when the links fit (fewer when there are fewer hosts),
    more when there are over ``unit_size`` links per process, so a crash or a retry never
    costs more than about ``unit_size`` links' worth of work. A host is never split: a
    host with more than ``unit_size`` links gets a unit of its own.
    """
    if processes < 1 or unit_size < 1:
        raise ValueError("processes and unit_size must be at least 1")
    by_host: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for link in links:
        by_host[key(link["url"])].append(link)
    count = min(len(by_host), max(processes, math.ceil(len(links) / unit_size)))
    units: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for host_links in sorted(by_host.values(), key=len, reverse=True):
        min(units, key=len).extend(host_links)
    return [unit for unit in units if unit]
