"""Console settings: every one from the environment (``MKRICH_CONSOLE_*``), flags win."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

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


@dataclass(frozen=True)
class Settings:
    db_url: str = DEFAULT_DB
    secret: str = field(default="", repr=False)
    inference_url: str = DEFAULT_INFERENCE_URL
    inference_token: str | None = field(default=None, repr=False)
    store: str = "runs/store"
    source: str = "sample"
    binance_api_url: str | None = None
    #: the last hour the window may end at (ISO 8601, UTC); default now (Binance) or the replay's end
    end: str | None = None
    secure_cookies: bool = False
    #: sign-in failures before back-off starts: of one account from one client address, of one
    #: account from anywhere, of one address for any account (the last two spare the addresses
    #: the account has signed in from)
    max_failures: int = 5
    account_max_failures: int = 50
    address_max_failures: int = 100
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 900.0
    session_hours: float = 12.0
    chart_days: int = 7
    default_quota: int = 1000

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"the session secret must be at least {MIN_SECRET_LENGTH} characters; set "
                "MKRICH_CONSOLE_SECRET (e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.source not in ("sample", "binance") and not self.source.startswith("csv:"):
            raise ConfigError(f"source {self.source!r}: use sample, binance or csv:PATH")

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Settings from ``MKRICH_CONSOLE_*`` (and ``MKRICH_STORE``, ``BINANCE_API_URL``);
        ``overrides`` that are not ``None`` (the command-line flags) win."""
        env = os.environ
        values = {
            "db_url": env.get("MKRICH_CONSOLE_DB") or DEFAULT_DB,
            "inference_url": env.get("MKRICH_CONSOLE_INFERENCE_URL") or DEFAULT_INFERENCE_URL,
            "inference_token": env.get("MKRICH_CONSOLE_INFERENCE_TOKEN") or None,
            "store": env.get("MKRICH_STORE") or "runs/store",
            "source": env.get("MKRICH_CONSOLE_SOURCE") or "sample",
            "binance_api_url": env.get("BINANCE_API_URL") or None,
            "end": env.get("MKRICH_CONSOLE_END") or None,
            "secure_cookies": _flag("MKRICH_CONSOLE_SECURE_COOKIES"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        secret = values.pop("secret", None) or env.get("MKRICH_CONSOLE_SECRET")
        if not secret:
            if _secret_required():
                raise ConfigError("MKRICH_CONSOLE_SECRET is required in a container (a Kubernetes "
                                  "Secret): the session signing key, 32+ random characters")
            secret = dev_secret()
        return cls(secret=secret, **values)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)
