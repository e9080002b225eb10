"""Page metadata says where its publication date came from

``page_metadata.published_source`` names the evidence the extractor chose the date from
(``json-ld datePublished``, ``url``, ``text: 10 октября 2020``, ``htmldate``...), so a
researcher can see why a page is dated as it is. Rows indexed before have none.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("page_metadata", sa.Column("published_source", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("page_metadata") as batch:
        batch.drop_column("published_source")
