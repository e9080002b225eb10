"""Indexes for search's newest-first listing

``page_metadata.published`` and ``links.last_capture_id`` are indexed so a search without
text (newest publication first) finds its first pages by walking the dates from the
newest, instead of sorting every link (issue 16).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_page_metadata_published", "page_metadata", ["published"])
    op.create_index("ix_links_last_capture", "links", ["last_capture_id"])


def downgrade() -> None:
    op.drop_index("ix_links_last_capture", table_name="links")
    op.drop_index("ix_page_metadata_published", table_name="page_metadata")
