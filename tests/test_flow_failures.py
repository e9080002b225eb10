"""Failures are recorded, never fatal: a bad link, and a whole batch that cannot finish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.catalog import session_scope
from pipeline.catalog.models import CrawlOutcome, CrawlRun, Link
from pipeline.config import paths

pytestmark = pytest.mark.e2e


def _seed_csv(tmp_path: Path, rows: list[str]) -> str:
    source = tmp_path / "seeds.csv"
    source.write_text("country,city,kind,label,url\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(source)


def test_failed_links_are_recorded_and_the_rest_archived(
    world: Any, prefect_server: None, tmp_path: Path
) -> None:
    from flows.crawl import crawl_flow

    source = _seed_csv(
        tmp_path,
        [
            f"Latvia,Riga,report,link report,{world.url('news', '/lv/riga-solidaritate')}",
            "Poland,Warsaw,report,refused,http://127.0.0.1:9/closed-port",
            "Poland,Krakow,report,off-limits,http://example.invalid/report",
        ],
    )
    home = tmp_path / "home"
    result = crawl_flow(source=source, home=str(home), batch_size=10)
    assert result["status"] == "finished"
    assert result["links_done"] == 3
    with session_scope(paths(home).database_url) as session:
        status = {link.label: link.status for link in session.scalars(select(Link))}
        errors = {o.link_id: o.error for o in session.scalars(select(CrawlOutcome))}
    assert status == {"link report": "alive", "refused": "error", "off-limits": "error"}
    assert any("LINKARCHIVE_ALLOWED_HOSTS" in (e or "") for e in errors.values())


def test_a_batch_that_cannot_finish_fails_alone(
    world: Any, prefect_server: None, tmp_path: Path
) -> None:
    from flows.crawl import crawl_flow

    source = _seed_csv(
        tmp_path,
        [f"Norway,Oslo,report,link report,{world.url('news', '/no/oslo-solidaritet')}"],
    )
    home = tmp_path / "home"
    # A timeout no subprocess can meet: every attempt is killed, then the batch fails.
    result = crawl_flow(source=source, home=str(home), batch_timeout=0.01)
    assert result["status"] == "partial"
    with session_scope(paths(home).database_url) as session:
        run = session.scalars(select(CrawlRun)).one()
        link = session.scalars(select(Link)).one()
        outcome = session.scalars(select(CrawlOutcome)).one()
    assert run.batches_failed == 1
    assert link.status == "error"
    assert outcome.error == "crawl batch failed"
