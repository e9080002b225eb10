"""The catalog's schema comes from Alembic migrations, and they match the models."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from pipeline.catalog.db import MIGRATIONS, engine_for, forget_engine
from pipeline.catalog.models import Base


def test_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    engine = engine_for(url)
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        context = MigrationContext.configure(connection)
        diff = compare_metadata(context, Base.metadata)
        triggers = set(
            connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        )
    forget_engine(url)
    assert diff == []
    # Search moved to its own index (migration 0014): FTS5's table went, the change log came.
    assert not any(name.startswith("search_fts") for name in tables)
    assert {name for name in triggers if name.startswith("search_changes")} == {
        "search_changes_document_insert", "search_changes_document_delete",
        "search_changes_link_update", "search_changes_link_delete",
        "search_changes_city_rename", "search_changes_country_rename",
    }  # fmt: skip


def test_an_old_catalog_is_upgraded_in_place_keeping_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    old = create_engine(url)
    with old.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            text(
                "INSERT INTO crawl_runs (id, started_at, status, selection, links_total,"
                " links_done, links_failed, batches_failed, captures, bytes_archived)"
                " VALUES (1, '2020-10-10 10:00:00', 'finished', '{}', 1, 1, 0, 0, 1, 10)"
            )
        )
        # A capture of that run: later migrations must not drop the table it references.
        connection.execute(
            text(
                "INSERT INTO captures (id, record_id, run_id, url, captured_at, size, warc_file,"
                " warc_offset, warc_length) VALUES (1, '<urn:uuid:1>', 1, 'http://127.0.0.1/',"
                " '2020-10-10 10:00:00', 10, 'a.warc.gz', 0, 100)"
            )
        )
    old.dispose()

    engine = engine_for(url)  # opening the catalog applies what is missing
    columns = {c["name"] for c in inspect(engine).get_columns("captures")}
    with engine.connect() as connection:
        saved = connection.execute(text("SELECT bytes_deduplicated FROM crawl_runs")).scalar()
        failed = connection.execute(text("SELECT units_failed FROM crawl_runs")).scalar()
    forget_engine(url)
    assert {"record_type", "refers_to"} <= columns
    assert saved == 0
    assert failed == 0
