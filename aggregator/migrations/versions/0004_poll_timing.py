"""what servers asked of a feed's polling: Retry-After, its own update rhythm, a permanent move

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feeds", sa.Column("not_before", sa.DateTime(), nullable=True))
    op.add_column("feeds", sa.Column("update_hint_seconds", sa.Integer(), nullable=True))
    op.add_column("feeds", sa.Column("moved_to", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("feeds", "moved_to")
    op.drop_column("feeds", "update_hint_seconds")
    op.drop_column("feeds", "not_before")
