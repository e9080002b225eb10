"""A link's standing counts its unconfirmed failures; checks are archived records

A failed crawl or check makes a link ``failing`` at once, with the number of failures in
a row and when they began; ``dead`` needs confirmation. Each check's judgement is a WARC
metadata record, so a rebuilt catalog restores it: ``metadata_record_id`` names it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ADD COLUMN and CREATE INDEX: a batch operation would recreate links, which
# captures and outcomes reference, and fail with foreign keys on.
def upgrade() -> None:
    op.add_column("links", sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("links", sa.Column("failing_since", sa.DateTime(), nullable=True))
    op.add_column("link_checks", sa.Column("metadata_record_id", sa.String(100), nullable=True))
    op.create_index(
        "ix_link_checks_metadata_record_id", "link_checks", ["metadata_record_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_link_checks_metadata_record_id", table_name="link_checks")
    op.drop_column("link_checks", "metadata_record_id")
    op.drop_column("links", "failing_since")
    op.drop_column("links", "failures")
