"""PostgreSQL keeps each search document's tsvector

Migration 0006 indexed an expression: a match used the GIN index, but ranking rebuilt
every matching document's tsvector from its text (milliseconds each for a long page), so
a query's time grew with its matches' text (issue 16). The tsvector is now also a stored
generated column, ``search_documents.vector``, that ranking reads; matching still uses
0006's expression index (PostgreSQL's planner, seeing a stored column as cheap to read,
would scan the table instead of using an index on the column). SQLite's FTS5 table is
unchanged.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migration 0006's expression (fulltext.PG_VECTOR, unqualified).
PG_VECTOR = (
    "setweight(to_tsvector('simple'::regconfig, title), 'A')"
    " || setweight(to_tsvector('simple'::regconfig, label), 'B')"
    " || setweight(to_tsvector('simple'::regconfig, place), 'B')"
    " || setweight(to_tsvector('simple'::regconfig, meta), 'C')"
    " || setweight(to_tsvector('simple'::regconfig, body), 'D')"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE search_documents"
        f" ADD COLUMN vector tsvector GENERATED ALWAYS AS ({PG_VECTOR}) STORED"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE search_documents DROP COLUMN vector")
