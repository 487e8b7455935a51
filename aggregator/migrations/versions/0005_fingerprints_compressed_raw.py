"""raw entry HTML stored deflated: a third of the database, read only by post exports

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 500


def _compress(text: str) -> bytes:
    return zlib.compress(text.encode("utf-8"), 1)


def _decompress(data: bytes) -> str:
    return zlib.decompress(data).decode("utf-8")


def _convert_raw_body(
    old_type: type[sa.types.TypeEngine[Any]],
    new_type: type[sa.types.TypeEngine[Any]],
    convert: Callable[[Any], Any],
) -> None:
    """Rewrite stories.raw_body in the other representation, a batch at a time.

    A new column, filled, then swapped in by name: plain ALTER TABLE
    statements, as a batch copy of `stories` would cascade away every entry
    source (see 0003).
    """
    op.add_column("stories", sa.Column("raw_body_new", new_type(), nullable=True))
    connection = op.get_bind()
    stories = sa.table(
        "stories",
        sa.column("id", sa.Integer),
        sa.column("raw_body", old_type),
        sa.column("raw_body_new", new_type),
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(stories.c.id, stories.c.raw_body)
            .where(stories.c.id > last, stories.c.raw_body.is_not(None))
            .order_by(stories.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        connection.execute(
            stories.update()
            .where(stories.c.id == sa.bindparam("id_"))
            .values(raw_body_new=sa.bindparam("value")),
            [{"id_": row.id, "value": convert(row.raw_body)} for row in rows],
        )
        last = rows[-1].id
    op.drop_column("stories", "raw_body")
    op.alter_column("stories", "raw_body_new", new_column_name="raw_body")


def upgrade() -> None:
    _convert_raw_body(sa.Text, sa.LargeBinary, _compress)


def downgrade() -> None:
    _convert_raw_body(sa.LargeBinary, sa.Text, _decompress)
