"""API tokens: ``mkr_`` + 32 random bytes (URL-safe base64), shown once. Stored as SHA-256 (a
token has 256 bits of entropy: a slow hash buys nothing) with a short prefix to tell them apart
and to find the row; the hash is compared in constant time. Never logged."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from make_us_rich.console.auth import InvalidInput
from make_us_rich.console.db import PREFIX_LENGTH, TOKEN_NAME_MAX, ApiToken, User, utcnow

TOKEN_PREFIX = "mkr_"
TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"^mkr_[A-Za-z0-9_-]{43}$")
_NAME_RE = re.compile(r"^[\w .@:+-]{1,64}$")
MAX_EXPIRY_DAYS = 3650


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    value = (name or "").strip()
    if not value or len(value) > TOKEN_NAME_MAX or not _NAME_RE.match(value):
        raise InvalidInput(f"a token name of 1 to {TOKEN_NAME_MAX} letters, digits, spaces or . @ : + - _ is needed")
    return value


def create(db: DbSession, user: User, name: str, expires_days: int | None = None) -> tuple[ApiToken, str]:
    """A new token of ``user``: the row and the secret (the only time it exists in clear)."""
    name = check_name(name)
    if expires_days is not None and not (1 <= expires_days <= MAX_EXPIRY_DAYS):
        raise InvalidInput(f"expiry must be 1 to {MAX_EXPIRY_DAYS} days, or none")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    row = ApiToken(user_id=user.id, name=name, prefix=secret[:PREFIX_LENGTH], token_hash=_hash(secret),
                   created_at=now, expires_at=now + timedelta(days=expires_days) if expires_days else None)
    db.add(row)
    db.flush()
    return row, secret


def resolve(db: DbSession, presented: str | None, now: datetime | None = None) -> tuple[ApiToken, User] | None:
    """The live token and its (enabled) owner for a presented secret, else ``None``."""
    if not presented or not _TOKEN_RE.match(presented):
        return None
    now = now or utcnow()
    digest = _hash(presented)
    found = None
    for row in db.scalars(select(ApiToken).where(ApiToken.prefix == presented[:PREFIX_LENGTH])):
        if hmac.compare_digest(row.token_hash, digest):
            found = row
    if found is None or found.revoked_at is not None or (found.expires_at and found.expires_at <= now):
        return None
    owner = db.get(User, found.user_id)
    if owner is None or owner.disabled:
        return None
    return found, owner


def revoke(db: DbSession, user: User, token_id: int) -> bool:
    """Revoke one of ``user``'s tokens (another user's token is treated as not found)."""
    result = db.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount == 1


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None
