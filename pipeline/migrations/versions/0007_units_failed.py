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


def upgrade() -> None:
    with op.batch_alter_table("crawl_runs", schema=None) as batch_op:
        batch_op.alter_column("batches_failed", new_column_name="units_failed")


def downgrade() -> None:
    with op.batch_alter_table("crawl_runs", schema=None) as batch_op:
        batch_op.alter_column("units_failed", new_column_name="batches_failed")
