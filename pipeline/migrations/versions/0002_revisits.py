"""Revisit records (deduplicated payloads) in the catalog

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("captures") as batch:
        batch.add_column(
            sa.Column("record_type", sa.String(20), nullable=False, server_default="response")
        )
        batch.add_column(sa.Column("refers_to", sa.String(100), nullable=True))
    with op.batch_alter_table("crawl_runs") as batch:
        batch.add_column(
            sa.Column("bytes_deduplicated", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("crawl_runs") as batch:
        batch.drop_column("bytes_deduplicated")
    with op.batch_alter_table("captures") as batch:
        batch.drop_column("refers_to")
        batch.drop_column("record_type")
