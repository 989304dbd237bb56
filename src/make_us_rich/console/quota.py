"""The monthly quota, enforced by the database: one conditional ``UPDATE ... SET used = used + 1
WHERE used < quota`` per call. The database serialises concurrent updates of the row (SQLite's
write lock; PostgreSQL re-checks the condition on the updated row), so with k units left exactly
k of N concurrent calls get one. A call that fails afterwards gives its unit back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session as DbSession

from make_us_rich.console.db import TokenUsage, Usage, User, insert_ignore, month_of, utcnow


def next_month_start(now: datetime) -> datetime:
    return datetime(now.year + (now.month == 12), now.month % 12 + 1, 1)


def retry_after_seconds(now: datetime | None = None) -> int:
    """Seconds until the quota resets: the start of the next month, UTC."""
    now = now or utcnow()
    return max(1, int((next_month_start(now) - now).total_seconds() + 0.999))


def take(db: DbSession, user_id: int, now: datetime | None = None) -> bool:
    """Take one unit of ``user_id``'s quota of this month; ``False`` when none is left.
    Commits: the unit is taken before the (slow) forecast is made."""
    month = month_of(now or utcnow())
    insert_ignore(db, Usage, user_id=user_id, month=month, used=0)
    quota = select(User.monthly_quota).where(User.id == user_id).scalar_subquery()
    result = db.execute(
        update(Usage)
        .where(and_(Usage.user_id == user_id, Usage.month == month, Usage.used < quota))
        .values(used=Usage.used + 1)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    return result.rowcount == 1


def give_back(db: DbSession, user_id: int, now: datetime | None = None) -> None:
    month = month_of(now or utcnow())
    db.execute(
        update(Usage).where(Usage.user_id == user_id, Usage.month == month, Usage.used > 0)
        .values(used=Usage.used - 1).execution_options(synchronize_session=False)
    )
    db.commit()


def count_token_call(db: DbSession, token_id: int, now: datetime | None = None) -> None:
    now = now or utcnow()
    month = month_of(now)
    insert_ignore(db, TokenUsage, token_id=token_id, month=month, used=0)
    db.execute(
        update(TokenUsage).where(TokenUsage.token_id == token_id, TokenUsage.month == month)
        .values(used=TokenUsage.used + 1).execution_options(synchronize_session=False)
    )
    db.commit()


def used(db: DbSession, user_id: int, now: datetime | None = None) -> int:
    month = month_of(now or utcnow())
    return db.scalar(select(func.coalesce(func.max(Usage.used), 0)).where(
        Usage.user_id == user_id, Usage.month == month)) or 0


def token_usage(db: DbSession, token_ids: list[int], now: datetime | None = None) -> dict[int, int]:
    month = month_of(now or utcnow())
    if not token_ids:
        return {}
    rows = db.execute(select(TokenUsage.token_id, TokenUsage.used).where(
        TokenUsage.token_id.in_(token_ids), TokenUsage.month == month))
    return {token_id: count for token_id, count in rows}
