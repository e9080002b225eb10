"""Crawl runs count failed crawl units, not batches

The crawl engine now runs long-lived crawl units (whole hosts each) instead of fixed
batches of links; the column keeps its meaning under the new name.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A plain RENAME COLUMN (SQLite >= 3.25, PostgreSQL): a batch operation would recreate
# crawl_runs, which captures and outcomes reference, and fail with foreign keys on.
def upgrade() -> None:
    op.execute("ALTER TABLE crawl_runs RENAME COLUMN batches_failed TO units_failed")


def downgrade() -> None:
    op.execute("ALTER TABLE crawl_runs RENAME COLUMN units_failed TO batches_failed")
