"""Search moves to an embedded tantivy index; the catalog logs what it must re-read

FTS5 (SQLite) and the GIN index (PostgreSQL) ranked every match of a query, so a query's
time grew with its matches: 0.3-0.8 s at a million links (issue 16). Search is now served
by a tantivy index kept beside the catalog (``pipeline.catalog.searchindex``), built from
``search_documents``, which stay the record of each link's folded words. Both database
indexes are dropped, and ``search_changes`` logs, through triggers, each link whose
document or facets (status, kind, place, latest capture) change, so every index, on
whichever machine, catches up from the log.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each: (trigger name, table, event, the link ids it logs).
LOGGED = (
    ("search_changes_document_insert", "search_documents", "INSERT", "VALUES (new.link_id)"),
    ("search_changes_document_delete", "search_documents", "DELETE", "VALUES (old.link_id)"),
    ("search_changes_link_update", "links",
     "UPDATE OF status, kind, label, url, final_url, country_id, city_id, last_capture_id",
     "VALUES (new.id)"),
    ("search_changes_link_delete", "links", "DELETE", "VALUES (old.id)"),
    ("search_changes_city_rename", "cities", "UPDATE OF name",
     "SELECT id FROM links WHERE city_id = new.id"),
    ("search_changes_country_rename", "countries", "UPDATE OF name",
     "SELECT id FROM links WHERE country_id = new.id"),
)  # fmt: skip


# changed_at in UTC, as the index compares it (SQLite's CURRENT_TIMESTAMP is UTC).
UTC_NOW = {"postgresql": sa.text("(now() AT TIME ZONE 'utc')")}


def _sibling(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log(rows: str) -> str:
    return f"INSERT INTO search_changes (link_id) {rows};"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "search_changes",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(),
            server_default=UTC_NOW.get(dialect, sa.text("(CURRENT_TIMESTAMP)")),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_search_changes_changed_at", "search_changes", ["changed_at"])
    if dialect == "sqlite":
        for name in ("search_documents_ai", "search_documents_ad", "search_documents_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_fts")
        for name, table, event, rows in LOGGED:
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {_log(rows)} END")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_search_documents_vector")
        op.execute("ALTER TABLE search_documents DROP COLUMN IF EXISTS vector")
        for name, table, event, rows in LOGGED:
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
                f" BEGIN {_log(rows)} RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {table}"
                f" FOR EACH ROW EXECUTE FUNCTION {name}()"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, _, _ in LOGGED:
        op.execute(
            f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if dialect != "sqlite" else "")
        )
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_index("ix_search_changes_changed_at", table_name="search_changes")
    op.drop_table("search_changes")
    # The database indexes again, as migrations 0006 and 0013 made them.
    fulltext = _sibling("0006_fulltext")
    if dialect == "sqlite":
        for statement in fulltext.SQLITE_FTS:
            op.execute(statement)
        op.execute("INSERT INTO search_fts(search_fts) VALUES ('rebuild')")
    elif dialect == "postgresql":
        op.execute(
            "CREATE INDEX ix_search_documents_vector ON search_documents"
            f" USING gin (({fulltext.PG_VECTOR}))"
        )
        _sibling("0013_search_tsvector").upgrade()
