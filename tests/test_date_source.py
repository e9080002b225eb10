"""A page's publication date keeps its evidence through indexing to the link page (issue 15)."""

from __future__ import annotations

from html import escape
from typing import Any

import pytest
from sqlalchemy import select
from webkit import copy_home, make_app, session_client

from pipeline.catalog import session_scope
from pipeline.catalog.models import City, Link, PageMetadataRow


def test_indexer_row_keeps_the_source_only_with_a_date() -> None:
    from pipeline.indexer import _metadata_row

    row = _metadata_row(1, {"published": "2020-10-10", "published_source": "url"})
    assert (str(row.published), row.published_source) == ("2020-10-10", "url")
    assert _metadata_row(2, {"published": None, "published_source": "url"}).published_source is None


def test_link_page_shows_why_the_date_was_chosen(
    crawled: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = copy_home(crawled["home"], tmp_path_factory.mktemp("web") / "home")
    app = make_app(home)
    with session_scope(app.state.paths.database_url) as session:
        berlin = session.scalar(select(Link).join(City).where(City.name == "Berlin"))
        assert berlin is not None and berlin.last_capture_id is not None
        row = session.get(PageMetadataRow, berlin.last_capture_id)
        assert row is not None and row.published is not None
        source, link_id = row.published_source, berlin.id
    assert source  # the replica's Berlin report declares its date
    page = session_client(app, "researcher").get(f"/links/{link_id}")
    assert page.status_code == 200
    assert f"(from {escape(source, quote=False)})" in page.text
