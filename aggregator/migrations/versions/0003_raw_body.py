"""raw entry HTML for post exports; the config order of each feed's categories

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Stories stored before this revision have no raw HTML; exports fall back
    # to their sanitised body until their feed changes them.
    op.add_column("stories", sa.Column("raw_body", sa.Text(), nullable=True))
    op.add_column(
        "feed_categories",
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch copy of `stories`
    # would drop the table, and with it every entry source by cascade.
    op.drop_column("feed_categories", "position")
    op.drop_column("stories", "raw_body")
