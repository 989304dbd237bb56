"""Alembic environment: the connection comes from :func:`make_us_rich.console.migrate.config`."""

from alembic import context

from make_us_rich.console.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
