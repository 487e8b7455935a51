"""Alembic environment: runs on the connection the storage module hands over."""

from __future__ import annotations

from alembic import context

from aggregator.storage import METADATA

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when run by the alembic CLI
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///var/aggregator.db"
    connection = create_engine(url).connect()

context.configure(
    connection=connection,
    target_metadata=METADATA,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
