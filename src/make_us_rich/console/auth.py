"""Accounts and sign-in: Argon2 password hashes, throttling with exponential back-off per account and address, sessions
kept server side (the cookie carries a signed random id), CSRF tokens bound to the session.

An unknown e-mail, a disabled account and a wrong password get the same answer in about the same
time: the password is always verified against a hash (a dummy one when there is no account)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session as DbSession

from make_us_rich.console.db import (
    EMAIL_MAX,
    ROLES,
    LoginThrottle,
    Session,
    User,
    insert_ignore,
    utcnow,
)
from make_us_rich.console.settings import Settings
from make_us_rich.errors import ConfigError

PASSWORD_MIN = 12
PASSWORD_MAX = 1024
FORGET_AFTER = timedelta(days=1)
#: an address the account signed in from is spared its account- and address-wide blocks this long
KNOWN_FOR = timedelta(days=30)
KEY_MAX = 300
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(24))


class InvalidInput(ConfigError):
    """A form value the console refuses (shown to the user as a 400)."""


def check_text(name: str, value: str | None) -> None:
    """Refuse a control character (NUL, escape, line breaks ...) in any text a person or script
    sends: PostgreSQL cannot store a NUL, and none of them belongs in a form field."""
    bad = next((c for c in value or "" if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        raise InvalidInput(f"field {name!r} contains a control character (U+{ord(bad):04X}): "
                           "remove it and try again")


def normalize_email(email: str) -> str:
    check_text("email", email)
    value = (email or "").strip().lower()
    if not value or len(value) > EMAIL_MAX or "@" not in value or any(c.isspace() for c in value):
        raise InvalidInput(f"an e-mail address of at most {EMAIL_MAX} characters is needed")
    return value


def check_password_rules(password: str) -> None:
    check_text("password", password)
    if not (PASSWORD_MIN <= len(password) <= PASSWORD_MAX):
        raise InvalidInput(f"the password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def create_user(db: DbSession, email: str, password: str, role: str = "member",
                monthly_quota: int = 1000) -> User:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if monthly_quota < 0 or monthly_quota > 10**9:
        raise InvalidInput("the monthly quota must be between 0 and 1000000000")
    email = normalize_email(email)
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise InvalidInput(f"a user {email} exists already")
    user = User(email=email, password_hash=hash_password(password), role=role,
                monthly_quota=monthly_quota, disabled=False, created_at=utcnow())
    db.add(user)
    db.flush()
    return user


# --------------------------------------------------------------------------- throttling
def _key(kind: str, value: str) -> str:
    """A throttle row's key; a long or unprintable value is hashed so that the key always fits
    the column (and reads well in the table otherwise)."""
    key = f"{kind}:{value}"
    if len(key) > KEY_MAX or not key.isprintable():
        return f"{kind}:sha256:{_sha256(value)}"
    return key


@dataclass(frozen=True)
class ThrottleKeys:
    """The rows one sign-in attempt is counted on: the account from this address (the tight
    limit), the account from anywhere and the address for any account (the loose limits, which
    do not apply where the account has signed in before: ``known``)."""

    pair: str
    account: str
    address: str
    known: str

    @classmethod
    def of(cls, email: str, address: str | None) -> ThrottleKeys:
        address = address or "unknown"
        return cls(pair=_key("pair", f"{address}|{email}"), account=_key("account", email),
                   address=_key("address", address), known=_key("known", f"{address}|{email}"))

    def counted(self) -> list[str]:
        return [self.pair, self.account, self.address]


def _limit(settings: Settings, key: str) -> int:
    kind = key.partition(":")[0]
    return {"pair": settings.max_failures, "account": settings.account_max_failures}.get(
        kind, settings.address_max_failures)


def blocked_for(db: DbSession, keys: ThrottleKeys, now: datetime | None = None) -> float:
    """Seconds until this account may try again from this address (0: now). The account-wide and
    address-wide blocks are not applied where the account signed in within ``KNOWN_FOR``, so that
    guesses from elsewhere cannot keep its owner out."""
    now = now or utcnow()
    rows = {r.key: r for r in db.scalars(select(LoginThrottle).where(
        LoginThrottle.key.in_([*keys.counted(), keys.known])))}
    known = keys.known in rows and rows[keys.known].updated_at > now - KNOWN_FOR
    applied = [keys.pair] if known else keys.counted()
    waits = [(rows[k].blocked_until - now).total_seconds() for k in applied
             if k in rows and rows[k].blocked_until and rows[k].blocked_until > now]
    return max(waits, default=0.0)


def record_failure(db: DbSession, settings: Settings, keys: list[str]) -> None:
    """One more failure per key (an atomic increment); from the key's limit on, each failure
    doubles the wait. Keys quiet for a day are forgotten, so random e-mails cannot fill the table."""
    now = utcnow()
    db.execute(delete(LoginThrottle).where(
        LoginThrottle.updated_at < now - FORGET_AFTER, ~LoginThrottle.key.startswith("known:"),
        or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < now)))
    db.execute(delete(LoginThrottle).where(LoginThrottle.key.startswith("known:"),
                                           LoginThrottle.updated_at < now - KNOWN_FOR))
    for key in keys:
        limit = _limit(settings, key)
        insert_ignore(db, LoginThrottle, key=key, failures=0, updated_at=now)
        failures = db.execute(
            update(LoginThrottle).where(LoginThrottle.key == key)
            .values(failures=LoginThrottle.failures + 1, updated_at=now)
            .returning(LoginThrottle.failures)
        ).scalar_one()
        if failures >= limit:
            wait = min(settings.backoff_seconds * 2 ** min(failures - limit, 30), settings.backoff_max_seconds)
            db.execute(update(LoginThrottle).where(LoginThrottle.key == key)
                       .values(blocked_until=now + timedelta(seconds=wait)))


def record_success(db: DbSession, settings: Settings, keys: ThrottleKeys) -> None:
    """Take back the failure :func:`authenticate` counted for an attempt that succeeded (and the
    block it may have started), clear the account's count from this address and remember the
    address as one the account signs in from."""
    for key in (keys.account, keys.address):
        db.execute(update(LoginThrottle).where(LoginThrottle.key == key, LoginThrottle.failures > 0)
                   .values(failures=LoginThrottle.failures - 1))
        db.execute(update(LoginThrottle).where(LoginThrottle.key == key,
                                               LoginThrottle.failures < _limit(settings, key))
                   .values(blocked_until=None))
    db.execute(delete(LoginThrottle).where(LoginThrottle.key == keys.pair))
    now = utcnow()
    insert_ignore(db, LoginThrottle, key=keys.known, failures=0, updated_at=now)
    db.execute(update(LoginThrottle).where(LoginThrottle.key == keys.known).values(updated_at=now))


@dataclass
class SignIn:
    user: User | None
    retry_after: float = 0.0


def authenticate(db: DbSession, settings: Settings, email: str, password: str, address: str | None) -> SignIn:
    """The user for ``email``/``password``, or ``SignIn(None)`` (wrong, unknown or disabled: one
    answer), or ``SignIn(None, retry_after)`` while throttled (the password is not even tried).
    :class:`InvalidInput` for a control character, before anything reaches the database."""
    check_text("email", email)
    check_text("password", password)
    key_email = (email or "").strip().lower()
    keys = ThrottleKeys.of(key_email, address)
    wait = blocked_for(db, keys)
    if wait > 0:
        return SignIn(None, wait)
    # count the attempt as a failure before the (slow) password check and commit it, so that
    # parallel guesses cannot all pass the block above, and whatever fails afterwards the
    # attempt stays counted; a success takes it back
    record_failure(db, settings, keys.counted())
    db.commit()
    user = db.scalar(select(User).where(User.email == key_email)) if key_email else None
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or user.disabled:
        return SignIn(None)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    record_success(db, settings, keys)
    db.commit()
    return SignIn(user)


# --------------------------------------------------------------------------- sessions
def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Sessions:
    """Signed cookie values <-> session rows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.signer = TimestampSigner(settings.secret, salt="mkrich-console-session")
        self.pre_signer = TimestampSigner(settings.secret, salt="mkrich-console-pre")
        self.max_age = int(settings.session_hours * 3600)

    def start(self, db: DbSession, user: User, old_cookie: str | None) -> str:
        """A new session for ``user`` (a new id on every sign-in); the old one is ended."""
        if old_cookie:
            self.end(db, old_cookie)
        raw = secrets.token_urlsafe(32)
        now = utcnow()
        db.execute(delete(Session).where(Session.expires_at < now))
        db.add(Session(id_hash=_sha256(raw), user_id=user.id, created_at=now,
                       expires_at=now + timedelta(seconds=self.max_age)))
        db.commit()
        return self.signer.sign(raw).decode()

    def raw_id(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 200:
            return None
        try:
            return self.signer.unsign(cookie, max_age=self.max_age).decode()
        except (BadSignature, SignatureExpired):
            return None

    def user(self, db: DbSession, cookie: str | None) -> tuple[User, str] | None:
        """The signed-in user and the session's raw id, or ``None``."""
        raw = self.raw_id(cookie)
        if raw is None:
            return None
        row = db.get(Session, _sha256(raw))
        if row is None or row.expires_at <= utcnow():
            return None
        user = db.get(User, row.user_id)
        if user is None or user.disabled:
            return None
        return user, raw

    def end(self, db: DbSession, cookie: str | None) -> None:
        raw = self.raw_id(cookie)
        if raw is not None:
            db.execute(delete(Session).where(Session.id_hash == _sha256(raw)))
            db.commit()

    # CSRF: an HMAC of the session id (signed in) or of a signed pre-session nonce (sign-in form)
    def new_pre(self) -> tuple[str, str]:
        nonce = secrets.token_urlsafe(24)
        return nonce, self.pre_signer.sign(nonce).decode()

    def pre_nonce(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 200:
            return None
        try:
            return self.pre_signer.unsign(cookie, max_age=self.max_age).decode()
        except (BadSignature, SignatureExpired):
            return None

    def csrf_token(self, seed: str) -> str:
        return hmac.new(self.settings.secret.encode(), f"csrf:{seed}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, seed: str | None, token: str | None) -> bool:
        if not seed or not token:
            return False
        return hmac.compare_digest(self.csrf_token(seed), token)
