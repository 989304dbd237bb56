"""The schema comes from the Alembic migrations (upgrade from empty, no drift against the models)
and the quota holds under concurrency: on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from make_us_rich.console import migrate, quota
from make_us_rich.console.db import Base, Usage, make_engine, session_factory


def test_upgrade_from_empty_matches_the_models(db_url):
    engine = make_engine(db_url)
    assert migrate.current(engine) is None
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                Base.metadata)
    assert diff == [], diff
    assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
    migrate.upgrade(engine)  # idempotent
    with engine.begin() as connection:
        from alembic import command

        command.downgrade(migrate.config(connection), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_replicas_migrating_together_take_turns(postgres):
    """Two console replicas start at once on an empty PostgreSQL database (each init container
    migrates): the advisory lock makes them take turns, both succeed, the schema is at head."""
    import uuid

    url = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    engines = [make_engine(url) for _ in range(3)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(engines))

    def replica(engine):
        start.wait()
        try:
            migrate.upgrade(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert migrate.current(engines[0]) == migrate.head()
    for engine in engines:
        engine.dispose()


@pytest.mark.parametrize("left", [0, 3, 5])  # 5: the month's row does not exist yet
def test_concurrent_calls_take_exactly_the_units_left(engine, users, left):
    """20 threads, each with its own connection, race for the member's last ``left`` units
    (with 5 left, for the first unit of the month: the row is created under the race too)."""
    Db = session_factory(engine)
    member = users["member"]  # quota 5
    with Db() as db:
        for _ in range(5 - left):
            assert quota.take(db, member)
    n = 20
    barrier = threading.Barrier(n)
    results: list[bool] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            with Db() as db:
                barrier.wait()
                results.append(quota.take(db, member))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results.count(True) == left and len(results) == n
    with Db() as db:
        assert db.scalar(select(Usage.used).where(Usage.user_id == member)) == 5
        assert quota.used(db, member) == 5
        quota.give_back(db, member)
        assert quota.used(db, member) == 4
        assert quota.take(db, member) and not quota.take(db, member)


def test_months_are_counted_apart(engine, users):
    Db = session_factory(engine)
    with Db() as db:
        for _ in range(5):
            assert quota.take(db, users["member"], now=datetime(2026, 1, 31, 23, 59))
        assert not quota.take(db, users["member"], now=datetime(2026, 1, 31, 23, 59))
        assert quota.take(db, users["member"], now=datetime(2026, 2, 1, 0, 0))


def test_retry_after_is_the_start_of_next_month_utc():
    assert quota.next_month_start(datetime(2026, 12, 31, 23, 0)) == datetime(2027, 1, 1)
    assert quota.next_month_start(datetime(2026, 2, 10)) == datetime(2026, 3, 1)
    assert quota.retry_after_seconds(datetime(2026, 11, 30, 23, 59, 30)) == 30


def test_a_bad_database_url_is_refused_without_repeating_it():
    """The URL may hold a password: the error says what is wrong, not what was given."""
    import pytest

    from make_us_rich.console.db import make_engine
    from make_us_rich.errors import ConfigError

    with pytest.raises(ConfigError, match="database URL is not valid") as refused:
        make_engine("host=db password=S3cretPW user=x")
    assert "S3cretPW" not in str(refused.value)


def test_forecasts_recorded_before_horizons_are_the_next_hours(db_url):
    """Migration 0003 on a database holding forecasts: they become 1-hour ones, and the same
    symbol, hour and version may then be kept once per horizon (the key takes the horizon)."""
    import sqlalchemy as sa
    from alembic import command
    from sqlalchemy import text

    from make_us_rich.console import forecasts
    from make_us_rich.console.db import Forecast

    engine = make_engine(db_url)
    with engine.begin() as connection:
        command.upgrade(migrate.config(connection), "0002")
        before = sa.table("forecasts", *(sa.column(n, t) for n, t in (
            ("symbol", sa.String), ("target_hour", sa.DateTime), ("model_version", sa.String),
            ("last_close", sa.Float), ("quantiles", sa.JSON), ("recorded_at", sa.DateTime))))
        connection.execute(sa.insert(before).values(
            symbol="BTCEUR", target_hour=datetime(2024, 1, 1), model_version="v1", last_close=1.0,
            quantiles={"0.05": 0.9, "0.25": 0.95, "0.5": 1.0, "0.75": 1.05, "0.95": 1.1}, recorded_at=datetime(2024, 1, 1)))
    migrate.upgrade(engine)
    answer = {"symbol": "BTCEUR", "forecast_time": "2024-01-01T00:00:00+00:00", "last_close": 1.0,
              "model_version": "v1", "quantiles": {"0.05": 0.9, "0.25": 0.95, "0.5": 1.0, "0.75": 1.05, "0.95": 1.1},
              "horizons": [{"hours": h, "forecast_time": f"2024-01-01T0{h - 1}:00:00+00:00",
                            "quantiles": {"0.05": 0.8, "0.25": 0.9, "0.5": 1.0, "0.75": 1.1, "0.95": 1.2}}
                           for h in (1, 4)]}
    # a 4-hour forecast made three hours earlier, for the same hour as the kept 1-hour one
    earlier = {**answer, "horizons": [{**answer["horizons"][1], "forecast_time": "2024-01-01T00:00:00+00:00"}]}
    with session_factory(engine)() as db:
        assert [(r.horizon, r.quantiles["0.95"]) for r in db.scalars(select(Forecast))] == [(1, 1.1)]
        forecasts.record(db, answer)  # its 1-hour part is the kept row: left as it is
        forecasts.record(db, earlier)
        rows = sorted((r.horizon, r.target_hour.hour, r.quantiles["0.95"]) for r in db.scalars(select(Forecast)))
        assert rows == [(1, 0, 1.1), (4, 0, 1.2), (4, 3, 1.2)]
        assert forecasts.recorded_horizons(db, "BTCEUR") == [1, 4]
        assert [r["interval_90"] for r in forecasts.history(db, "BTCEUR", [], horizon=4)] == [[0.8, 1.2], [0.8, 1.2]]
    with engine.begin() as connection:  # and back: the longer horizons' rows go, the next hour's stay
        command.downgrade(migrate.config(connection), "0002")
        assert connection.execute(text("SELECT count(*) FROM forecasts")).scalar() == 1
    engine.dispose()
