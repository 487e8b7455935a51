"""an index to find a feed's entries by fingerprint, so unchanged entries skip cleaning

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_entry_sources_feed_hash", "entry_sources", ["feed_id", "content_hash"])


def downgrade() -> None:
    op.drop_index("ix_entry_sources_feed_hash", table_name="entry_sources")
