"""Progress of a running crawl, per page: what its crawl units report as they go.

Each crawl unit's process replaces a small JSON file twice a second
(``spiders.extensions.CrawlProgress``) in the run's folder under ``jobs/``; this module
sums them for the CLI's bar, the web app's job page and the flow's log. The run's folder
also holds its liveness lock (:func:`holding_run`), which tells a run whose flow was
killed from one still going.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROGRESS_SUFFIX = ".progress.json"


def run_folder(jobs: Path, run_id: int) -> Path:
    """Where a run's unit job, links, log, progress and result files live."""
    return jobs / f"run{run_id:05d}"


RUN_LOCK = "flow.lock"


@contextmanager
def holding_run(jobs: Path, run_id: int) -> Iterator[None]:
    """Hold the run's liveness lock (an flock, released by the kernel however the holder
    ends) while its flow runs on this machine."""
    folder = run_folder(jobs, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / RUN_LOCK, "ab") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def run_abandoned(jobs: Path, run_id: int) -> bool:
    """True if the run's flow held its liveness lock once and nobody holds it now: the
    flow was killed (``kill -9``, a lost machine) while the run was marked running."""
    path = run_folder(jobs, run_id) / RUN_LOCK
    try:
        fh = open(path, "rb")  # noqa: SIM115 (the lock lives as long as the file is open)
    except FileNotFoundError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


@dataclass
class CrawlProgress:
    """A run's figures so far, summed over its units' attempts."""

    pages: int = 0
    pages_failed: int = 0
    requests: int = 0
    responses: int = 0
    bytes: int = 0
    elapsed: float = 0.0  # the longest-running unit's seconds
    units_running: int = 0

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.elapsed if self.elapsed > 0 else 0.0

    def describe(self, links_total: int | None = None) -> str:
        """One line for a log or a job page."""
        done = f"{self.pages}/{links_total}" if links_total is not None else str(self.pages)
        return (
            f"{done} pages, {self.pages_per_second:.1f} pages/s, {self.requests} requests, "
            f"{self.bytes / 1e6:.1f} MB, {self.pages_failed} failed"
        )


def read_progress(jobs: Path, run_id: int) -> CrawlProgress:
    """The run's progress as its units last reported it (zeros before any report)."""
    total = CrawlProgress()
    for path in sorted(run_folder(jobs, run_id).glob(f"*{PROGRESS_SUFFIX}")):
        try:
            unit = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # replaced while read: the next poll sees it
        total.pages += int(unit.get("pages", 0))
        total.pages_failed += int(unit.get("pages_failed", 0))
        total.requests += int(unit.get("requests", 0))
        total.responses += int(unit.get("responses", 0))
        total.bytes += int(unit.get("bytes", 0))
        total.elapsed = max(total.elapsed, float(unit.get("elapsed", 0.0)))
        total.units_running += not unit.get("finished", False)
    return total
