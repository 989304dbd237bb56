"""Console settings (pydantic-settings): every one from the environment (``MKRICH_CONSOLE_*``), flags win."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from make_us_rich.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_DB = "sqlite:///runs/console.db"
DEFAULT_INFERENCE_URL = "http://127.0.0.1:8080"
SECRET_FILE = Path("runs/console.secret")
MIN_SECRET_LENGTH = 32


def _secret_required() -> bool:
    """In a Pod (Kubernetes sets KUBERNETES_SERVICE_HOST) or where the image says so
    (MKRICH_CONSOLE_REQUIRE_SECRET=1, set by the console image): no generated key. A
    development container (/.dockerenv) is a workstation here."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) or _flag("MKRICH_CONSOLE_REQUIRE_SECRET")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def dev_secret(path: Path = SECRET_FILE) -> str:
    """A random signing key kept in ``path`` (mode 0600), so sessions survive a restart on a
    workstation. A container must be given MKRICH_CONSOLE_SECRET instead."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    log.warning("MKRICH_CONSOLE_SECRET is not set: generated a session key in %s (set the "
                "variable in production)", path)
    return key


class Settings(BaseSettings):
    """Every setting from the environment: ``MKRICH_CONSOLE_`` + the field's name (``db_url`` is
    ``MKRICH_CONSOLE_DB``; ``store`` and ``binance_api_url`` are ``MKRICH_STORE`` and
    ``BINANCE_API_URL``, shared with the other commands); keyword arguments (the command-line
    flags) win. Immutable."""

    model_config = SettingsConfigDict(env_prefix="MKRICH_CONSOLE_", frozen=True, env_ignore_empty=True,
                                      extra="forbid", validate_by_name=True)

    db_url: str = Field(DEFAULT_DB, validation_alias="MKRICH_CONSOLE_DB")
    secret: str = Field("", repr=False)
    inference_url: str = Field(DEFAULT_INFERENCE_URL)
    inference_token: str | None = Field(None, repr=False)
    store: str = Field("runs/store", validation_alias="MKRICH_STORE")
    source: str = Field("sample")
    binance_api_url: str | None = Field(None, validation_alias="BINANCE_API_URL")
    #: the last hour the window may end at (ISO 8601, UTC); default now (Binance) or the replay's end
    end: str | None = Field(None)
    secure_cookies: bool = Field(False)
    #: addresses of the reverse proxies whose X-Forwarded-For is believed (comma-separated)
    trusted_proxies: str = Field("")
    #: sign-in failures before back-off starts: of one account from one client address, of one
    #: account from anywhere, of one address for any account (the last two spare the addresses
    #: the account has signed in from)
    max_failures: int = Field(5, ge=1)
    account_max_failures: int = Field(50, ge=1)
    address_max_failures: int = Field(100, ge=1)
    backoff_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(900.0, gt=0)
    session_hours: float = Field(12.0, gt=0)
    chart_days: int = Field(7, ge=1)
    default_quota: int = Field(1000, ge=0)
    #: minutes between two recordings of every served symbol's forecast (0: off; the forecasts
    #: fetched for the pages and the API are recorded all the same)
    record_minutes: float = Field(15.0, ge=0)
    #: the kfp.local pipeline root the runs pages read (``off``: none, e.g. on a cluster, where
    #: the Kubeflow Pipelines dashboard lists the runs)
    runs_dir: str = Field("runs/pipeline")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError("; ".join(_problem(e) for e in exc.errors())) from None

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, value: str) -> str:
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the session secret must be at least {MIN_SECRET_LENGTH} characters; set "
                "MKRICH_CONSOLE_SECRET (e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return value

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in ("sample", "binance") and not value.startswith("csv:"):
            raise ValueError(f"source {value!r}: use sample, binance or csv:PATH")
        return value

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """The settings of the environment; ``overrides`` that are not ``None`` (the flags) win.
        Without MKRICH_CONSOLE_SECRET a workstation gets a generated key (:func:`dev_secret`)."""
        values = {k: v for k, v in overrides.items() if v is not None}
        if not values.get("secret") and not os.environ.get("MKRICH_CONSOLE_SECRET"):
            if _secret_required():
                raise ConfigError("MKRICH_CONSOLE_SECRET is required in a container (a Kubernetes "
                                  "Secret): the session signing key, 32+ random characters")
            values["secret"] = dev_secret()
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return self.model_copy(update=changes)


def _problem(error: Any) -> str:
    """One line naming the setting and its variable (never the value: it may be a secret)."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    name = str(error["loc"][0]) if error["loc"] else "?"
    field = Settings.model_fields.get(name)
    if field is None:  # reported under its variable's name
        return f"setting {name}: {error['msg']}"
    return f"setting {name} ({field.validation_alias or 'MKRICH_CONSOLE_' + name.upper()}): {error['msg']}"
