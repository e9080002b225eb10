"""Archive each seed import: the source as read, and what the catalog made of it.

The index page (or CSV) is itself evidence: which page listed which link, when. Each
import writes a WARC file holding the source's bytes (a ``resource`` record) and a
``metadata`` record with the parsed entries and the catalog ids of their links, so the
WARC files alone can rebuild the catalog, cities without links included.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from archive import RecordFactory, RotatingWarcWriter, record_id, sha256_hex
from pipeline.catalog.importer import ImportResult
from pipeline.crawlcontext import SEED_FORMAT
from pipeline.seeds import SeedEntry, SeedLink, SeedSource


def _uri(location: str) -> str:
    return location if "://" in location else Path(location).as_uri()


def archive_import(warcs: Path, loaded: SeedSource, result: ImportResult) -> list[Path]:
    """Write the seed source and its parsed entries to a new WARC file in ``warcs``."""
    factory = RecordFactory()
    uri = _uri(loaded.location)
    resource = factory.resource(uri, loaded.body, loaded.content_type or "application/octet-stream")
    context = {
        "format": SEED_FORMAT,
        "version": 1,
        "location": loaded.location,
        "sha256": sha256_hex(loaded.body),
        "entries": [asdict(entry) for entry in loaded.entries],
        "link_ids": result.link_ids,
    }
    payload = json.dumps(context, ensure_ascii=False, sort_keys=True).encode("utf-8")
    metadata = factory.metadata(uri, payload, refers_to=record_id(resource))
    with RotatingWarcWriter(
        warcs, factory=factory, warcinfo_fields={"linkarchive-seed-import": loaded.location}
    ) as writer:
        writer.write_many([resource, metadata])
    return list(writer.closed_files)


def entries_from_context(context: dict[str, Any]) -> list[SeedEntry]:
    """The entries of an archived seed import."""
    return [
        SeedEntry(**{**entry, "links": [SeedLink(**link) for link in entry["links"]]})
        for entry in context["entries"]
    ]
