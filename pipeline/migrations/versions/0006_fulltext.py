"""Full-text search: one folded document per link (and on PostgreSQL its GIN index)

On SQLite an FTS5 table indexes these documents (external content, kept in step by
triggers). ``pipeline.catalog.fulltext`` fills the documents of a catalog that has links
but none yet (one from before this migration) on first use.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Must stay the expression fulltext.PG_VECTOR builds, or PostgreSQL will not use the index.
PG_VECTOR = (
    "setweight(to_tsvector('simple'::regconfig, title), 'A')"
    " || setweight(to_tsvector('simple'::regconfig, label), 'B')"
    " || setweight(to_tsvector('simple'::regconfig, place), 'B')"
    " || setweight(to_tsvector('simple'::regconfig, meta), 'C')"
    " || setweight(to_tsvector('simple'::regconfig, body), 'D')"
)

# The FTS5 index over search_documents: folding of diacritics is done by the tokenizer too.
SQLITE_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(title, label, place, meta, body,"
    " content='search_documents', content_rowid='link_id',"
    " tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS search_documents_ai AFTER INSERT ON search_documents BEGIN"
    " INSERT INTO search_fts(rowid, title, label, place, meta, body)"
    " VALUES (new.link_id, new.title, new.label, new.place, new.meta, new.body); END",
    "CREATE TRIGGER IF NOT EXISTS search_documents_ad AFTER DELETE ON search_documents BEGIN"
    " INSERT INTO search_fts(search_fts, rowid, title, label, place, meta, body)"
    " VALUES ('delete', old.link_id, old.title, old.label, old.place, old.meta, old.body); END",
    "CREATE TRIGGER IF NOT EXISTS search_documents_au AFTER UPDATE ON search_documents BEGIN"
    " INSERT INTO search_fts(search_fts, rowid, title, label, place, meta, body)"
    " VALUES ('delete', old.link_id, old.title, old.label, old.place, old.meta, old.body);"
    " INSERT INTO search_fts(rowid, title, label, place, meta, body)"
    " VALUES (new.link_id, new.title, new.label, new.place, new.meta, new.body); END",
)


def upgrade() -> None:
    op.create_table(
        "search_documents",
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("place", sa.Text(), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"]),
        sa.PrimaryKeyConstraint("link_id"),
    )
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE INDEX ix_search_documents_vector ON search_documents USING gin (({PG_VECTOR}))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_documents")
