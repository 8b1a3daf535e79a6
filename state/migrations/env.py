"""Alembic environment: runs migrations on the engine that :func:`state.database.migrate` passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from amloop.state.models import Base

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        # Serialise concurrent migrations of one database (two processes opening it at once);
        # a transaction-level lock is released only by the commit below, after the new schema
        # and its version row are visible to the next process.
        connection.execute(text("SELECT pg_advisory_xact_lock(7140001)"))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
