"""Replay the archive in pywb, the field's own replay server, on 127.0.0.1.

pywb is an optional extra (``pip install -e ".[replay]"``): it pins libraries of its own,
so it may also live in a separate environment, its ``wayback`` server found through
``LINKARCHIVE_WAYBACK``. The collection reads the data home's WARC files and CDXJ indexes
where they are.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import write_cdxj
from pipeline.catalog.models import Capture, Link
from pipeline.config import Paths

COLLECTION = "linkarchive"


def find_wayback() -> str | None:
    """pywb's ``wayback`` server: $LINKARCHIVE_WAYBACK, beside this Python, or on PATH."""
    given = os.environ.get("LINKARCHIVE_WAYBACK")
    if given:
        return given if Path(given).exists() else None
    beside = Path(sys.executable).with_name("wayback")
    return str(beside) if beside.exists() else shutil.which("wayback")


def prepare(where: Paths) -> Path:
    """Write the pywb configuration for the data home (and any missing CDXJ); its folder."""
    for warc in sorted(where.warcs.glob("*.warc.gz")):
        if not (where.indexes / f"{warc.name}.cdxj").exists():
            write_cdxj(warc, where.indexes)
    root = where.home / "replay"
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(
        "# Written by `linkarchive replay`; rewritten on each start.\n"
        "collections:\n"
        f"  {COLLECTION}:\n"
        f"    archive_paths: {where.warcs.resolve()}/\n"
        f"    index_paths: {where.indexes.resolve()}/\n"
        "enable_memento: true\n",
        encoding="utf-8",
    )
    return root


def replay_url(base: str, capture: Capture, *, frame: bool = True) -> str:
    """Where pywb shows a capture (``mp_``: the page alone, without pywb's banner frame)."""
    stamp = capture.captured_at.strftime("%Y%m%d%H%M%S")
    return f"{base}/{COLLECTION}/{stamp}{'' if frame else 'mp_'}/{capture.url}"


def archived_pages(session: Session) -> list[tuple[Link, Capture]]:
    """Each link whose latest capture is a page that can be shown (HTTP 2xx)."""
    rows = session.execute(
        select(Link, Capture)
        .join(Capture, Capture.id == Link.last_capture_id)
        .where(Capture.http_status.between(200, 299))
        .order_by(Link.id)
    )
    return [(link, capture) for link, capture in rows]
