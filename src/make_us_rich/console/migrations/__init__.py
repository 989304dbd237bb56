"""Alembic migrations of the console's schema (run by :mod:`make_us_rich.console.migrate`)."""
