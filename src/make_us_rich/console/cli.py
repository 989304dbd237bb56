"""``mkrich console``: migrate and serve, ``migrate``, ``create-admin`` (registered by
:mod:`make_us_rich.cli`). Passwords come from ``MKRICH_CONSOLE_ADMIN_PASSWORD`` or a prompt,
never from an argument (it would land in the shell's history)."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys

from make_us_rich.errors import ConfigError

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "console",
        help="the forecast console: web pages, API tokens, quotas (migrates, then serves)",
        description="The forecast console on http://HOST:PORT: sign in, charts with the served "
        "forecast, the model registry, API tokens and the prediction API /api/v1/forecast/SYMBOL. "
        "Every flag has an environment variable (MKRICH_CONSOLE_*); flags win.",
    )
    _db_option(p, None)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--store", default=None, help="model store: a folder or s3://bucket/prefix ($MKRICH_STORE, runs/store)")
    p.add_argument("--source", default=None, help="where the last window comes from: sample or binance "
                   "($MKRICH_CONSOLE_SOURCE, default sample)")
    p.add_argument("--inference-url", default=None, help="Open Inference Protocol v2 endpoint "
                   "($MKRICH_CONSOLE_INFERENCE_URL, default http://127.0.0.1:8080)")
    p.add_argument("--api-url", default=None, help="Binance API base URL ($BINANCE_API_URL)")
    p.add_argument("--with-server", action="store_true",
                   help="development: publish a sample model if the store is empty, run mkrich serve "
                   "beside the console and make sure an admin exists (what make console does)")
    p.set_defaults(func=cmd_console)
    steps = p.add_subparsers(dest="console_command", metavar="[STEP]", title="steps (optional)")
    m = steps.add_parser("migrate", help="upgrade the console's database to the newest schema")
    _db_option(m, argparse.SUPPRESS)
    m.set_defaults(func=cmd_migrate)
    a = steps.add_parser("create-admin", help="create an administrator (password from "
                         "MKRICH_CONSOLE_ADMIN_PASSWORD or a prompt)")
    a.add_argument("--email", required=True, help="the administrator's e-mail (the sign-in name)")
    _db_option(a, argparse.SUPPRESS)
    a.set_defaults(func=cmd_create_admin)


def _db_option(p: argparse.ArgumentParser, default) -> None:
    p.add_argument("--db", default=default, help="database URL: sqlite:///runs/console.db or "
                   "postgresql+psycopg://user:pass@host/db ($MKRICH_CONSOLE_DB)")


def _db_url(args: argparse.Namespace) -> str:
    from make_us_rich.console.settings import DEFAULT_DB

    return getattr(args, "db", None) or os.environ.get("MKRICH_CONSOLE_DB") or DEFAULT_DB


def _migrated_engine(url: str):
    from make_us_rich.console import migrate
    from make_us_rich.console.db import make_engine

    engine = make_engine(url)
    migrate.upgrade(engine)
    return engine


def cmd_migrate(args: argparse.Namespace) -> int:
    from make_us_rich.console import migrate

    engine = _migrated_engine(_db_url(args))
    print(f"database at revision {migrate.current(engine)} (head)")
    return 0


def admin_password(prompt: bool = True) -> str:
    password = os.environ.get("MKRICH_CONSOLE_ADMIN_PASSWORD")
    if password:
        return password
    if not prompt or not sys.stdin.isatty():
        raise ConfigError("no password: set MKRICH_CONSOLE_ADMIN_PASSWORD or run this in a terminal")
    first = getpass.getpass("password (12+ characters): ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ; run the command again")
    return first


def create_admin(engine, email: str, password: str) -> None:
    from make_us_rich.console import auth
    from make_us_rich.console.db import session_factory

    with session_factory(engine)() as db:
        auth.create_user(db, email, password, role="admin")
        db.commit()


def cmd_create_admin(args: argparse.Namespace) -> int:
    engine = _migrated_engine(_db_url(args))
    create_admin(engine, args.email, admin_password())
    print(f"created administrator {args.email.strip().lower()}")
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from make_us_rich.console.settings import Settings

    settings = Settings.from_env(db_url=args.db, store=args.store, source=args.source,
                                 inference_url=args.inference_url, binance_api_url=args.api_url)
    if args.with_server:
        return run_with_server(settings, args.host, args.port)
    serve(settings, args.host, args.port)
    return 0


def serve(settings, host: str, port: int, on_ready=None) -> None:
    """Migrate to head, then serve the console until interrupted."""
    import uvicorn

    from make_us_rich.asgi import header_timeout_protocol
    from make_us_rich.console.app import create_app

    check_port_free(port, host)
    _migrated_engine(settings.db_url)
    app = create_app(settings)
    trusted = settings.trusted_proxies
    shown = f"[{host}]" if ":" in host else host
    print(f"console on http://{shown}:{port}/ (database {_safe_url(settings.db_url)}, store "
          f"{settings.store}, inference {settings.inference_url})", flush=True)
    if on_ready:
        on_ready()
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=bool(trusted),
                forwarded_allow_ips=trusted or None, server_header=False, http=header_timeout_protocol())


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """A taken port is a one-line error naming the console's own flag and make variable."""
    from make_us_rich.ports import port_in_use

    if port_in_use(port, host):
        raise ConfigError(f"port {port} is in use (another console, or make docs-serve?): stop it, "
                          "or choose another port with --port N (make console CONSOLE_PORT=N)")


def _safe_url(url: str) -> str:
    """The database URL without its password (for messages)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def ensure_admin(db_url: str) -> None:
    """An administrator exists (``make console``): the first one from MKRICH_CONSOLE_ADMIN_EMAIL
    and MKRICH_CONSOLE_ADMIN_PASSWORD, or asked for in a terminal."""
    from sqlalchemy import select

    from make_us_rich.console.db import User, session_factory

    engine = _migrated_engine(db_url)
    with session_factory(engine)() as db:
        if db.scalar(select(User.id).where(User.role == "admin", User.disabled.is_(False))) is not None:
            return
    email = os.environ.get("MKRICH_CONSOLE_ADMIN_EMAIL")
    if not email:
        if not sys.stdin.isatty():
            raise ConfigError("no administrator yet: set MKRICH_CONSOLE_ADMIN_EMAIL and "
                              "MKRICH_CONSOLE_ADMIN_PASSWORD, or run make console in a terminal")
        email = input("no administrator yet; e-mail of the first one: ")
    create_admin(engine, email, admin_password())
    print(f"created administrator {email.strip().lower()}", flush=True)


def run_with_server(settings, host: str, port: int) -> int:
    """``--with-server`` (:mod:`make_us_rich.console.dev`): a sample model, an administrator and
    ``mkrich serve`` beside the console, stopped with it."""
    from urllib.parse import urlsplit

    from make_us_rich.console.dev import ensure_model, port_or_free, start_server
    from make_us_rich.ports import stop_process

    ensure_model(settings.store)
    ensure_admin(settings.db_url)
    wanted = urlsplit(settings.inference_url)
    server_port = port_or_free(wanted.port if wanted.hostname == "127.0.0.1" and wanted.port else 8080)
    proc, url = start_server(settings.store, server_port)
    try:
        serve(settings.with_(inference_url=url), host, port,
              on_ready=lambda: print(f"open http://{host}:{port}/ and sign in (mkrich serve on {url}; "
                                     "Ctrl-C stops both)", flush=True))
    finally:
        stop_process(proc)
    return 0
