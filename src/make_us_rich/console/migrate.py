"""Alembic, configured in code (the scripts ship inside the package): upgrade to head, and
whether a database is at head (what ``/readyz`` reports)."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine


def config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("make_us_rich.console") / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    return ScriptDirectory.from_config(config()).get_current_head()


#: the PostgreSQL advisory lock key of the migrations (any constant the console alone uses)
MIGRATION_LOCK = 0x6D6B7269  # "mkri"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade in one transaction. On PostgreSQL, replicas that start together (each runs the
    migration in its init container) take turns on a transaction-level advisory lock: the
    first migrates, the others then find the schema at head."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        command.upgrade(config(connection), revision)


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
