"""Replay the archive in pywb, the field's own replay server, on 127.0.0.1.

pywb is an optional extra (``pip install -e ".[replay]"``): it pins libraries of its own,
so it may also live in a separate environment, its ``wayback`` server found through
``LINKARCHIVE_WAYBACK``. The collection reads the data home's WARC files and CDXJ indexes
where they are, and verified copies of those only the WARC store holds.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import write_cdxj
from pipeline.catalog.models import Capture, Link, WarcFile
from pipeline.config import Paths
from pipeline.storage import cache_path, cached_copy

COLLECTION = "linkarchive"


def find_wayback() -> str | None:
    """pywb's ``wayback`` server: $LINKARCHIVE_WAYBACK, beside this Python, or on PATH."""
    given = os.environ.get("LINKARCHIVE_WAYBACK")
    if given:
        return given if Path(given).exists() else None
    beside = Path(sys.executable).with_name("wayback")
    return str(beside) if beside.exists() else shutil.which("wayback")


def prepare(where: Paths, session: Session | None = None) -> Path:
    """Write the pywb configuration for the data home (and any missing CDXJ); its folder.

    With the catalog's ``session``, WARC files it lists that are not on this machine but
    in the WARC store (a cluster's workers wrote them) are fetched once, verified, into
    ``cache/warcs/`` and replayed from there.
    """
    folders = [where.warcs]
    if session is not None:
        cached = cache_path(where, "x").parent
        for name in session.scalars(select(WarcFile.name).where(WarcFile.store_uri.is_not(None))):
            if not (where.warcs / name).exists():
                cached_copy(session, where, name)
        if cached.is_dir():
            folders.append(cached)
    for folder in folders:
        for warc in sorted(folder.glob("*.warc.gz")):
            if not (where.indexes / f"{warc.name}.cdxj").exists():
                write_cdxj(warc, where.indexes)
    root = where.home / "replay"
    root.mkdir(parents=True, exist_ok=True)
    paths_yaml = "".join(f"      - {folder.resolve()}/\n" for folder in folders)
    (root / "config.yaml").write_text(
        "# Written by `linkarchive replay`; rewritten on each start.\n"
        "collections:\n"
        f"  {COLLECTION}:\n"
        f"    archive_paths:\n{paths_yaml}"
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
