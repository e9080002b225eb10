"""Crawls on workers: URLs/s with one and two workers, and where a unit's time goes.

A latency-bound site of many hosts (``bench.site``: every response delayed), a cluster on
loopback (``bench.cluster``: PostgreSQL, a Prefect server on it, an S3 store), and three
crawls of equal thirds of the site's pages (the same hosts, different pages):

1. on the archivist's machine alone (no work pool: one crawl process per core);
2. on one worker taking one unit at a time;
3. on two such workers.

Both workers run on this machine, so the second adds a process, not a machine: the
figures show scheduling and coordination costs, and how units spread, not more CPU.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bench.cluster import Cluster
from bench.site import Site

CITIES = ("One", "Two", "Three")


def _flow_runs(env: dict[str, str], run_id: int) -> dict[int, dict[str, datetime | None]]:
    """Each unit's flow run: when it was created (submitted) and when it started."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=f"run{run_id}-unit"))
        )
    found: dict[int, dict[str, datetime | None]] = {}
    for run in runs:
        number = int(run.name.rsplit("unit", 1)[1])
        if run.start_time is not None and number not in found:
            found[number] = {"created": run.created, "started": run.start_time}
    return found


def _units(env: dict[str, str], run_id: int) -> list[dict[str, Any]]:
    from pipeline.catalog import session_scope
    from pipeline.catalog.models import CrawlUnit

    with session_scope(env["LINKARCHIVE_DATABASE_URL"]) as session:
        rows = session.scalars(select(CrawlUnit).where(CrawlUnit.run_id == run_id)).all()
        return [
            {
                "number": u.number,
                "worker": u.worker,
                "links": len(u.link_ids),
                "claimed": u.started_at,
                "finished": u.finished_at,
                "moved": (u.result or {}).get("moved", {}),
            }
            for u in rows
        ]


def _crawl(cluster: Cluster, city: str, *extra: str, **env: str) -> dict[str, Any]:
    from pipeline.catalog import session_scope
    from pipeline.catalog.models import CrawlRun

    started = time.monotonic()
    done = cluster.linkarchive("crawl", "--city", city, *extra, timeout=1800, **env)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"crawl --city {city} failed: {done.stderr[-2000:]}")
    with session_scope(cluster.env["LINKARCHIVE_DATABASE_URL"]) as session:
        run = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
        assert run is not None
        return {"run_id": run.id, "links": run.links_done, "captures": run.captures,
                "seconds": seconds}  # fmt: skip


def _breakdown(cluster: Cluster, run_id: int) -> list[str]:
    """A run's units: the first one's wait from ``run_deployment`` to its flow run starting
    (scheduling latency), the median of that wait (queueing for a free worker included),
    then medians of start → claim (leases), claim → done, storing and indexing."""
    units = _units(cluster.env, run_id)
    runs = _flow_runs(cluster.env, run_id)
    pickup, start, work, store, index = [], [], [], [], []
    for unit in units:
        flow_run = runs.get(unit["number"])
        if flow_run and flow_run["started"] and unit["claimed"]:
            created, began = flow_run["created"], flow_run["started"]
            assert created is not None
            pickup.append((began - created).total_seconds())
            claimed = unit["claimed"].replace(tzinfo=began.tzinfo)
            start.append((claimed - began).total_seconds())
            work.append((unit["finished"] - unit["claimed"]).total_seconds())
        store.append(unit["moved"].get("store_seconds", 0.0))
        index.append(unit["moved"].get("index_seconds", 0.0))

    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.1f}" if values else "—"

    workers = sorted({u["worker"] for u in units if u["worker"]})
    first = f"{min(pickup):.1f}" if pickup else "—"
    return [str(len(units)), ", ".join(workers), first, median(pickup), median(start),
            median(work), median(store), median(index)]  # fmt: skip


def workers_section(quick: bool = False) -> str:
    """The "Workers" section of docs/PERFORMANCE.md."""
    hosts, pages, latency = (12, 180, 200) if quick else (24, 2160, 200)
    with (
        Site(hosts=hosts, pages=pages, latency_ms=latency) as site,
        Cluster(site.addresses) as cluster,
    ):
        seeds = cluster.root / "seeds.csv"
        lines = [
            f"Germany,{CITIES[i * len(CITIES) // pages]},report,Report {i},{url}\n"
            for i, url in enumerate(site.urls)
        ]
        seeds.write_text("country,city,kind,label,url\n" + "".join(lines))
        imported = cluster.linkarchive("seeds", "import", str(seeds))
        if imported.returncode != 0:
            raise RuntimeError(imported.stderr)
        results, breakdown = [], []
        local = _crawl(cluster, CITIES[0], LINKARCHIVE_WORK_POOL="")
        results.append(["this machine alone (2 crawl processes)", local])
        cluster.worker("w1", limit=1)
        cluster.wait_for_workers({"w1"})
        one = _crawl(cluster, CITIES[1], "--pool", cluster.pool)
        results.append(["1 worker, 1 unit at a time", one])
        breakdown.append(["1 worker", *_breakdown(cluster, one["run_id"])])
        cluster.worker("w2", limit=1)
        cluster.wait_for_workers({"w1", "w2"})
        two = _crawl(cluster, CITIES[2], "--pool", cluster.pool)
        results.append(["2 workers, 1 unit at a time each", two])
        breakdown.append(["2 workers", *_breakdown(cluster, two["run_id"])])
        store = cluster.describe()["store"]
    rows = [
        [name, str(r["links"]), str(r["captures"]), f"{r['seconds']:.1f}",
         f"{r['links'] / r['seconds']:.2f}", f"{r['captures'] / r['seconds']:.1f}"]
        for name, r in results
    ]  # fmt: skip

    def table(header: list[str], body: list[list[str]]) -> str:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])

    return f"""## Workers

`linkarchive crawl` over a third of a synthetic site each time ({pages // 3} report pages
with an image and the host's stylesheet, on the same {hosts} hosts, {latency} ms added
to every response), into one PostgreSQL catalog and an S3 store ({store}), with a Prefect
server on PostgreSQL (`bench/workersbench.py`, `bench/cluster.py`). Both workers run on
this machine: the second adds a crawl process, not a machine. "URLs/s" counts captures
(pages, images, stylesheets, revisits) per second of the whole command, Prefect included.

{table(["crawl", "links", "captures", "seconds", "links/s", "URLs/s"], rows)}

Where a unit's time goes (seconds; medians over the run's units but the first column):
*first start* is from the crawl flow's `run_deployment` to the first unit's flow run
starting on a worker: the scheduling latency (workers poll every second here,
`PREFECT_WORKER_QUERY_SECONDS=1`, Prefect's default being 10 s; then a Python process
starts and imports Prefect and linkarchive, about 3 s); *to start* is the same for every
unit, queueing for a free worker included; *to claim* is the unit taking its claim and
its host-shard leases; *unit* is from the claim to done: the Scrapy process (its own
start-up of a few seconds included) and the time spent *storing* (CDXJ, upload,
verification) and *indexing* (the shared catalog's commit).

{table(["crawl", "units", "workers", "first start", "to start", "to claim", "unit",
        "storing", "indexing"], breakdown)}
"""  # fmt: skip
