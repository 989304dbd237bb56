"""The console's tables (SQLAlchemy 2.0) and the engine for SQLite or PostgreSQL. The schema is
created only by the Alembic migrations (:mod:`.migrate`); a test checks they match these models.

Times are naive UTC (``utcnow``): SQLite keeps no time zone and both databases must agree."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from make_us_rich.errors import ConfigError

ROLES = ("admin", "member")
EMAIL_MAX = 254
TOKEN_NAME_MAX = 64
PREFIX_LENGTH = 12


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def month_of(when: datetime) -> str:
    return when.strftime("%Y-%m")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'member')", name="role"),
        CheckConstraint("monthly_quota >= 0", name="quota"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="member")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    monthly_quota: Mapped[int] = mapped_column(Integer, default=1000)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Session(Base):
    """A signed-in browser: the cookie holds a random id, the table only its SHA-256."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class ApiToken(Base):
    """An API token: only its SHA-256 and a short visible prefix are stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(TOKEN_NAME_MAX))
    prefix: Mapped[str] = mapped_column(String(PREFIX_LENGTH), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Usage(Base):
    """Units a user consumed in a month (``YYYY-MM``): the row the quota is enforced on."""

    __tablename__ = "usage"
    __table_args__ = (CheckConstraint("used >= 0", name="used"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class TokenUsage(Base):
    """Successful calls per token and month (what the tokens page shows)."""

    __tablename__ = "token_usage"

    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class LoginThrottle(Base):
    """Consecutive sign-in failures of one key (``account:<email>`` or ``address:<ip>``)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Forecast(Base):
    """A forecast the console obtained from the inference endpoint: for ``target_hour`` (the
    hour whose close it predicts, ``horizon`` hours after the last candle known), by
    ``model_version``; one row per symbol, hour, version and horizon however often it is
    fetched. What the symbol page compares with the close that came."""

    __tablename__ = "forecasts"
    __table_args__ = (UniqueConstraint("symbol", "target_hour", "model_version", "horizon"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    symbol: Mapped[str] = mapped_column(String(20))
    target_hour: Mapped[datetime] = mapped_column(DateTime)
    model_version: Mapped[str] = mapped_column(String(100))
    last_close: Mapped[float] = mapped_column(Float)
    #: quantile level ("0.05", ...) -> price
    quantiles: Mapped[dict] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: hours ahead (1: the next hour)
    horizon: Mapped[int] = mapped_column(Integer, server_default="1")


def insert_ignore(db, model, **values) -> None:
    """``INSERT`` a row unless its key exists (a concurrent insert of the same key is no error)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.execute(insert(model).values(**values).on_conflict_do_nothing())


def make_engine(url: str) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://...``; a SQLite file's folder
    is created, and SQLite waits for locks instead of failing (concurrent quota updates)."""
    try:
        parsed = make_url(url)
    except Exception:
        # the URL is not repeated: it may hold a password
        raise ConfigError("the database URL is not valid: use sqlite:///runs/console.db or "
                          "postgresql+psycopg://user:password@host:5432/dbname") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # it will hold password hashes: readable by its owner only
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(f"database {backend!r} is not supported: use sqlite:/// or postgresql+psycopg://")


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
