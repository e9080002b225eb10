"""A payload already archived is written as a revisit record, across crawls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from archive import format_warc_date, read_record
from pipeline.catalog import session_scope
from pipeline.catalog.models import Capture, CrawlRun
from pipeline.cli import main
from pipeline.config import paths

pytestmark = pytest.mark.e2e


def test_second_crawl_stores_revisits_that_resolve_to_the_original(
    world: Any, prefect_server: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.crawl import crawl_flow

    home = tmp_path / "home"
    first = crawl_flow(source=world.index_url, country="Lithuania", home=str(home))
    second = crawl_flow(country="Lithuania", home=str(home))
    assert first["status"] == second["status"] == "finished"
    assert second["bytes_deduplicated"] > 0
    assert second["bytes_archived"] < first["bytes_archived"] / 10

    where = paths(home)
    with session_scope(where.database_url) as session:
        run2 = session.get_one(CrawlRun, second["run_id"])
        revisits = session.scalars(
            select(Capture).where(Capture.run_id == run2.id, Capture.record_type == "revisit")
        ).all()
        originals = {
            c.record_id: c for c in session.scalars(select(Capture).where(Capture.run_id == 1))
        }
        assert revisits
        assert run2.bytes_deduplicated == sum(r.size for r in revisits)
        for revisit in revisits:
            original = originals[revisit.refers_to]
            assert revisit.payload_sha256 == original.payload_sha256
            record = read_record(where.warcs / revisit.warc_file, revisit.warc_offset)
            assert record.rec_type == "revisit"
            assert record.get("WARC-Refers-To-Target-URI") == original.url
            assert record.get("WARC-Refers-To-Date") == format_warc_date(original.captured_at)
            assert record.get("WARC-Profile", "").endswith("revisit/identical-payload-digest")
        page = next(r for r in revisits if (r.content_type or "").startswith("text/html"))
        original_page = originals[page.refers_to]

    outputs = []
    for capture_id in (page.id, original_page.id):
        target = tmp_path / f"{capture_id}.html"
        argv = ["--home", str(home), "get", "--capture", str(capture_id), "-o", str(target)]
        assert main(argv) == 0
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1] and b"<html" in outputs[0].lower()

    check = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", *map(str, where.warcs.glob("*.warc.gz"))],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout


def test_the_digest_filter_takes_in_what_the_catalog_indexes_meanwhile(tmp_path: Path) -> None:
    from datetime import datetime

    from spiders.dedup import DedupIndex

    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    digests = [f"{n:064x}" for n in (0xA1, 0xB2)]

    def index_capture(number: int) -> None:  # as the flow's indexer does while a unit runs
        with session_scope(url) as session:
            session.add(
                Capture(
                    record_id=f"<urn:uuid:{number}>",
                    url=f"http://127.0.0.1/{number}",
                    captured_at=datetime(2026, 12, 5),
                    size=10,
                    warc_file="a.warc.gz",
                    warc_offset=number,
                    warc_length=1,
                    record_type="response",
                    payload_sha256=digests[number],
                )  # fmt: skip
            )

    eager, lazy = DedupIndex(url, refresh=0), DedupIndex(url, refresh=3600)
    assert eager.lookup(digests[0], 10) is None and lazy.lookup(digests[0], 10) is None
    index_capture(0)
    found = eager.lookup(digests[0], 10)
    assert found is not None and found.record_id == "<urn:uuid:0>"
    # Not taken in yet: stored again rather than a revisit, never a wrong reference.
    assert lazy.lookup(digests[0], 10) is None
    assert eager.lookup(digests[1], 10) is None  # absent: the filter answers
    index_capture(1)
    assert eager.lookup(digests[1], 10) is not None
    eager.close()
    lazy.close()
