"""The catalog moves from SQLite to PostgreSQL by URL alone: the same crawl, the same answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.catalog import session_scope
from pipeline.catalog.fulltext import SearchQuery, search
from pipeline.catalog.queries import status_summary
from pipeline.config import paths

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

COMPARED = ("country", "city", "kind", "label", "url", "status", "http_status", "title",
            "description", "author", "published", "language", "images")  # fmt: skip


def _comparable(rows: list[dict[str, Any]], world: Any) -> list[tuple]:
    # Replica ports differ per world: compare URLs by path.
    base = {url: site for site, url in world.base_urls.items()}

    def local(url: str | None) -> str | None:
        for prefix, site in base.items():
            if url and url.startswith(prefix):
                return site + url[len(prefix) :]
        return url

    return sorted(tuple(local(row[k]) if k == "url" else row[k] for k in COMPARED) for row in rows)


def test_same_crawl_gives_same_catalog_on_postgresql(
    crawled: dict[str, Any],
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.crawl import crawl_flow

    world = crawled["world"]
    with session_scope(paths(crawled["home"]).database_url) as session:
        on_sqlite = search(session, SearchQuery(limit=None)).rows
        sqlite_status = status_summary(session)

    monkeypatch.setenv("LINKARCHIVE_DATABASE_URL", postgres_url)
    result = crawl_flow(source=world.index_url, home=str(tmp_path / "home"))
    assert result["status"] == "finished"
    assert not (tmp_path / "home" / "catalog.sqlite").exists()

    with session_scope(postgres_url) as session:
        on_postgres = search(session, SearchQuery(limit=None)).rows
        assert [r["city"] for r in search(session, SearchQuery("МОСКВЕ")).rows] == ["Moscow"]
        assert {r["city"] for r in search(session, SearchQuery(country="DE")).rows} == {
            "Berlin", "Munich", "Hamburg",
        }  # fmt: skip
        postgres_status = status_summary(session)
    assert _comparable(on_postgres, world) == _comparable(on_sqlite, world)

    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "last_capture"} for r in rows]

    assert strip(postgres_status) == strip(sqlite_status)
