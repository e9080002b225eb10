"""CDXJ indexes of WARC files, as pywb and cdxj-indexer write them (SURT keys, sorted)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["REPLAYED_RECORDS", "cdxj_name", "read_cdxj", "write_cdxj"]

REPLAYED_RECORDS = "response,revisit,resource"  # cdxj-indexer takes a comma list


def cdxj_name(warc: Path) -> str:
    """The index file name for a WARC file."""
    return warc.name + ".cdxj"


def write_cdxj(warc: Path, directory: Path) -> Path:
    """Write the sorted CDXJ index of ``warc`` into ``directory`` (atomically); returns it.

    Uses the field's own indexer (cdxj-indexer, pywb's) on the records a replay shows:
    response, revisit and resource records (not our metadata records, which share their
    response's URL and would be served in its place), ``filename`` being the base name.
    """
    # Here, not at the top: cdxj-indexer (with surt, tldextract) takes a fifth of a
    # second to import, and every reader of ``archive`` (e.g. `get`) would pay it.
    from cdxj_indexer import CDXJIndexer

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / cdxj_name(warc)
    partial = target.with_name(target.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        CDXJIndexer(
            output=out,
            inputs=[str(warc)],
            sort=True,
            post_append=True,
            dir_root=str(warc.parent),
            records=REPLAYED_RECORDS,
        ).process_all()
        out.flush()
        os.fsync(out.fileno())
    partial.replace(target)
    return target


def read_cdxj(path: Path) -> Iterator[tuple[str, str, dict]]:
    """(SURT key, 14-digit timestamp, fields) for each line of a CDXJ file."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            key, stamp, fields = line.rstrip("\n").split(" ", 2)
            yield key, stamp, json.loads(fields)
