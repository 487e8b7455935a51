"""sanitised bodies stored deflated, and each story's digest excerpt kept with it

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BATCH = 500


def _compress(text: str) -> bytes:
    return zlib.compress(text.encode("utf-8"), 1)


def _decompress(data: bytes) -> str:
    return zlib.decompress(data).decode("utf-8")


def _convert(
    column: str,
    old_type: type[sa.types.TypeEngine[Any]],
    new_type: type[sa.types.TypeEngine[Any]],
    convert: Callable[[Any], Any],
) -> None:
    """Rewrite one column of `stories` in the other representation, a batch at a time.

    As in 0005: a new column, filled, then swapped in by name, in plain ALTER
    TABLE statements (a batch copy of `stories` would cascade away every
    entry source).
    """
    new_name = f"{column}_new"
    op.add_column("stories", sa.Column(new_name, new_type(), nullable=True))
    connection = op.get_bind()
    stories = sa.table(
        "stories",
        sa.column("id", sa.Integer),
        sa.column(column, old_type),
        sa.column(new_name, new_type),
    )
    old, new = stories.c[column], stories.c[new_name]
    last = 0
    while True:
        rows = connection.execute(
            sa.select(stories.c.id, old)
            .where(stories.c.id > last, old.is_not(None))
            .order_by(stories.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            stories.update()
            .where(stories.c.id == sa.bindparam("id_"))
            .values({new: sa.bindparam("value")}),
            [{"id_": id_, "value": convert(value)} for id_, value in rows],
        )
        last = rows[-1].id
    op.drop_column("stories", column)
    op.alter_column("stories", new_name, new_column_name=column)


def upgrade() -> None:
    for column in ("summary", "content"):
        _convert(column, sa.Text, sa.LargeBinary, _compress)
    # Left empty: a card made for an older story makes its excerpt from the bodies.
    op.add_column("stories", sa.Column("excerpt", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("stories", "excerpt")
    for column in ("summary", "content"):
        _convert(column, sa.LargeBinary, sa.Text, _decompress)
