"""Run one crawl unit in this process: ``python -m spiders.run JOB.json``.

A job file describes one crawl unit: a set of whole hosts whose links this process
crawls from start to end (the flow starts one such process per unit; a Twisted reactor
cannot be restarted, and a crash or hang must only cost one unit). The links are either
inline (``links``) or, for long units, in a JSON Lines file (``links_file``) read as the
crawl goes. The result is written next to the job as ``<job>.result.json``; the exit
status is 0 only if Scrapy finished normally, as its stats say.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from archive.space import DISK_FULL_EXIT, is_disk_full
from spiders.extensions import DiskSpaceGuard
from spiders.links import LinkSpider

STAT_KEYS = (
    "finish_reason",
    "elapsed_time_seconds",
    "item_scraped_count",
    "response_received_count",
    "downloader/request_count",
    "downloader/response_bytes",
    "retry/count",
    "log_count/ERROR",
)


def result_path(job_path: Path) -> Path:
    """Where the result of a job file is written."""
    return job_path.with_suffix(".result.json")


def crawl_settings(job: dict[str, Any]) -> Settings:
    """The project's settings (``settings.py``) with this job's run id and paths."""
    settings = Settings()
    settings.setmodule("settings", priority="project")
    settings.set("LINKARCHIVE_RUN_ID", job.get("run_id"), priority="cmdline")
    settings.set("LINKARCHIVE_CRAWL_MODE", job.get("mode") or "crawl", priority="cmdline")
    if job.get("warc_dir"):
        settings.set("LINKARCHIVE_WARC_DIR", job["warc_dir"], priority="cmdline")
    if job.get("log_file"):
        settings.set("LOG_FILE", job["log_file"], priority="cmdline")
    if job.get("progress_file"):
        settings.set("LINKARCHIVE_PROGRESS_FILE", job["progress_file"], priority="cmdline")
    return settings


PR_SET_PDEATHSIG = 1  # prctl(2)


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(job_path: Path) -> dict[str, Any]:
    """Crawl the job's links; returns the result that is also written to disk."""
    job = json.loads(job_path.read_text(encoding="utf-8"))
    process = CrawlerProcess(crawl_settings(job))
    crawler = process.create_crawler(LinkSpider)
    process.crawl(crawler, job=job)
    process.start()
    stats = crawler.stats.get_stats() if crawler.stats else {}
    store = getattr(crawler, "_linkarchive_warc_store", None)
    result = {
        "job": str(job_path),
        "pid": os.getpid(),
        "links": crawler.spider.links_total if crawler.spider else 0,
        "stats": {k: stats.get(k) for k in STAT_KEYS},
        "peak_rss_bytes": peak_rss_bytes(),
        "warc_files": [str(p) for p in store.writer.closed_files] if store else [],
    }
    tmp = result_path(job_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    tmp.replace(result_path(job_path))
    return result


def _stop_with_parent() -> None:
    """Get SIGTERM when the flow that started this crawl dies (``kill -9``, its machine's
    OOM killer): the crawl then closes its WARC file and ends, instead of crawling on
    with nobody to index what it writes. The flow names itself in LINKARCHIVE_PARENT_PID."""
    parent = os.environ.get("LINKARCHIVE_PARENT_PID", "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # it died before the line above
        raise SystemExit("the flow that started this crawl is gone")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the crawl subprocess."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m spiders.run JOB.json", file=sys.stderr)
        return 2
    _stop_with_parent()
    try:
        result = run(Path(args[0]))
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        print(f"stopping: {exc}", file=sys.stderr)  # even the result found no room
        return DISK_FULL_EXIT
    reason = result["stats"]["finish_reason"]
    if reason == DiskSpaceGuard.REASON:
        return DISK_FULL_EXIT
    return 0 if reason == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
