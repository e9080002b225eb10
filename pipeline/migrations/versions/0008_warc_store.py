"""WARC files kept in a store: where (URI), and the SHA-256 verified when stored

Closed WARC files may be copied into a store named by LINKARCHIVE_WARC_STORE (a folder or
s3://bucket/prefix); the catalog records the copy's URI, its SHA-256 and when it was made,
so a reader without the local file reads records from the store by byte range.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ADD COLUMN (nullable): a batch operation would recreate warc_files.
def upgrade() -> None:
    op.add_column("warc_files", sa.Column("sha256", sa.String(64), nullable=True))
    op.add_column("warc_files", sa.Column("store_uri", sa.String(4096), nullable=True))
    op.add_column("warc_files", sa.Column("stored_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("warc_files", "stored_at")
    op.drop_column("warc_files", "store_uri")
    op.drop_column("warc_files", "sha256")
