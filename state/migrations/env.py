"""Alembic environment: runs migrations on the engine that :func:`state.database.migrate` passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from state.models import Base

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        # Serialise concurrent migrations of one database (two processes opening it at once).
        connection.execute(text("SELECT pg_advisory_lock(7140001)"))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_unlock(7140001)"))
        connection.commit()
