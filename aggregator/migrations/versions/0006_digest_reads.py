"""digest reads: cards apart from the bodies, indexes that cover a day's stories

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty at first: the next publish makes the cards of the stories it shows.
    op.create_table(
        "digest_cards",
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("thumbnail", sa.Text(), nullable=True),
        sa.Column("published", sa.DateTime(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("feeds", sa.Text(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["story_id"], ["stories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("story_id"),
    )
    # Each replaces an index on its first column alone, which it serves as well.
    op.create_index("ix_stories_first_seen_published", "stories", ["first_seen", "published"])
    op.drop_index("ix_stories_first_seen", table_name="stories")
    op.create_index("ix_entry_sources_story_feed", "entry_sources", ["story_id", "feed_id"])
    op.drop_index("ix_entry_sources_story_id", table_name="entry_sources")
    op.create_index("ix_entry_sources_feed_source", "entry_sources", ["feed_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_entry_sources_feed_source", table_name="entry_sources")
    op.create_index("ix_entry_sources_story_id", "entry_sources", ["story_id"])
    op.drop_index("ix_entry_sources_story_feed", table_name="entry_sources")
    op.create_index("ix_stories_first_seen", "stories", ["first_seen"])
    op.drop_index("ix_stories_first_seen_published", table_name="stories")
    op.drop_table("digest_cards")
