"""Code tests of the preprocessing stages on real klines (the bundled sample)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from make_us_rich import stages
from make_us_rich.errors import ConfigError, InsufficientHistoryError
from make_us_rich.preprocessing import (
    FEATURE_COLUMNS,
    create_sequences,
    extract_features_from_dataset,
    load_scaler,
    save_scaler,
    split_data,
)
from make_us_rich.preprocessing.scaling import FEATURE_RANGE
from make_us_rich.preprocessing.windows import QUANTILE_FEATURES, stationary_inputs
from make_us_rich.training.config import TrainConfig


@pytest.fixture(scope="module")
def features(sample_btceur):
    return extract_features_from_dataset(sample_btceur)


def test_features_values(sample_btceur, features):
    assert list(features.columns) == list(FEATURE_COLUMNS)
    assert (features.dtypes == "float64").all()
    assert len(features) == len(sample_btceur)
    np.testing.assert_array_equal(
        features["close_change"], sample_btceur["close"] - sample_btceur["open"]
    )
    # Calendar features checked against the standard library, row by row, on a few rows.
    for i in (0, 1234, len(features) - 1):
        t = sample_btceur["timestamp"].iloc[i].to_pydatetime()
        row = features.iloc[i]
        assert row["hour"] == t.hour
        assert row["day_of_week"] == t.weekday()
        assert row["day_of_month"] == t.day
        assert row["week_of_year"] == t.isocalendar().week
        assert row["month"] == t.month
    assert features.index[0] == sample_btceur["timestamp"].iloc[0]


def test_features_need_price_columns(sample_btceur):
    with pytest.raises(Exception, match=r"lack column\(s\) \['close'\]"):
        extract_features_from_dataset(sample_btceur.drop(columns="close"))


def test_split_is_chronological_and_complete(features):
    train, test = split_data(features, 0.1)
    assert len(train) + len(test) == len(features)
    assert len(test) == 442  # ceil(4416 * 0.1)
    assert train.index[-1] < test.index[0]
    pd.testing.assert_frame_equal(pd.concat([train, test]), features)


def test_split_rejects_bad_fractions(features):
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="between 0 and 1"):
            split_data(features, bad)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The stage chain (fetch -> features -> split -> windows -> scale) on the last 120 days of
    the bundled BTCEUR sample, as the pipeline runs it."""
    out = tmp_path_factory.mktemp("chain")
    stages.fetch_stage("sample", "BTCEUR", out / "klines", lookback_days=120)
    stages.features_stage(out / "klines", out / "features.csv")
    split = stages.split_stage(out / "features.csv", out / "train.csv", out / "test.csv", 0.1)
    windows = stages.sequences_stage(out / "train.csv", out / "test.csv", out / "seq.npz", 24, 0.2)
    stages.scale_stage(out / "seq.npz", out / "scaler", TrainConfig().inputs)
    return out, split, windows


def test_windows_stage_holds_out_the_latest_train_windows_and_the_test_period(chain):
    out, split, windows = chain
    train, test = stages.read_table(out / "train.csv"), stages.read_table(out / "test.csv")
    assert split["train_rows"] + split["test_rows"] == 120 * 24 and split["test_rows"] == 288
    assert train.index.max() < test.index.min()
    with np.load(out / "seq.npz") as z:
        X_train, X_val, X_test, t_test = z["X_train"], z["X_val"], z["X_test"], z["t_test"]
        assert X_train.shape[1:] == X_test.shape[1:] == (24, len(QUANTILE_FEATURES))
    n = windows["train_windows"] + windows["val_windows"]
    assert windows["val_windows"] == int(np.ceil(0.2 * n)) and len(X_val) == windows["val_windows"]
    # validation windows are the latest train windows: they follow the training ones in time
    close = QUANTILE_FEATURES.index("close")
    last_train_close = X_train[-1, -1, close]
    assert last_train_close in train["close"].to_numpy(np.float32)
    assert X_val[0, -2, close] == last_train_close  # the next window, one hour later
    # every test window forecasts an hour of the test period (its history may reach into train)
    assert pd.DatetimeIndex(t_test, tz="UTC").min() >= test.index.min() and len(X_test) == windows["test_windows"]


def test_scale_stage_fits_on_the_train_windows_only(chain):
    out, _, _ = chain
    inputs = TrainConfig().inputs
    scaler = load_scaler(out / "scaler")
    with np.load(out / "seq.npz") as z:
        train = stationary_inputs(z["X_train"], inputs).reshape(-1, scaler.n_features_in_)
        everything = stationary_inputs(np.concatenate([z["X_train"], z["X_val"], z["X_test"]]), inputs)
    np.testing.assert_allclose(scaler.data_min_, train.min(axis=0))
    np.testing.assert_allclose(scaler.data_max_, train.max(axis=0))
    assert scaler.feature_range == FEATURE_RANGE
    # validation and test are not part of the fit: they reach beyond the train range
    assert (everything.reshape(-1, scaler.n_features_in_).max(axis=0) > scaler.data_max_).any()


def test_too_little_history_is_refused_with_what_to_do(chain, tmp_path):
    out, _, _ = chain
    short = stages.read_table(out / "features.csv").iloc[-26:]  # 23 train rows: no window of 24 h
    short.to_csv(tmp_path / "features.csv")
    stages.split_stage(tmp_path / "features.csv", tmp_path / "train.csv", tmp_path / "test.csv", 0.1)
    with pytest.raises(InsufficientHistoryError, match="need at least 25 rows"):
        stages.sequences_stage(tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "s.npz", 24, 0.2)
    assert not (tmp_path / "s.npz").exists()


def test_scaler_persists_as_pickle_and_json_exactly(tmp_path, features):
    from sklearn.preprocessing import MinMaxScaler

    train, test = split_data(features, 0.1)
    scaler = MinMaxScaler(feature_range=FEATURE_RANGE).fit(train)
    test_s = scaler.transform(test)
    pkl, js = save_scaler(scaler, tmp_path)
    params = json.loads(js.read_text())
    assert params["feature_names"] == list(FEATURE_COLUMNS)
    assert params["feature_range"] == [-1.0, 1.0]
    for loaded in (load_scaler(js), load_scaler(tmp_path), load_scaler(pkl)):
        out = loaded.transform(test)
        np.testing.assert_array_equal(out, test_s)  # bit-exact
        np.testing.assert_array_equal(loaded.inverse_transform(out), scaler.inverse_transform(out))
    assert isinstance(pickle.loads(pkl.read_bytes()), type(scaler))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scaler.json", "scaler.pkl"]


def test_load_scaler_errors(tmp_path):
    with pytest.raises(ConfigError, match="no scaler"):
        load_scaler(tmp_path)
    (tmp_path / "scaler.json").write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match="not a make-us-rich scaler"):
        load_scaler(tmp_path)


def test_create_sequences_values_and_views(features):
    X, y = create_sequences(features, "close", 24)
    assert X.shape == (len(features) - 24, 24, len(FEATURE_COLUMNS))
    assert X.dtype == y.dtype == np.float32
    values = features.to_numpy(np.float32)
    close = features.columns.get_loc("close")
    for i in (0, 17, len(X) - 1):
        np.testing.assert_array_equal(X[i], values[i : i + 24])
        assert y[i] == values[i + 24, close]
    assert not X.flags.writeable  # a strided view, not a copy
    assert X.base is not None


def test_create_sequences_errors(features):
    with pytest.raises(InsufficientHistoryError, match="need at least 25 rows"):
        create_sequences(features.iloc[:24], "close", 24)
    with pytest.raises(ConfigError, match="target column 'price'"):
        create_sequences(features, "price", 24)
    with pytest.raises(ConfigError, match="positive integer"):
        create_sequences(features, "close", 0)


def test_calendar_features_match_pandas_over_decades():
    from make_us_rich.preprocessing.features import calendar_features

    ts = pd.date_range("1965-01-01", "2040-12-31", freq="7h", tz="UTC")  # crosses 1970 and ISO year ends
    expected = np.column_stack(
        [ts.hour, ts.dayofweek, ts.day, ts.isocalendar().week.to_numpy(), ts.month]
    )
    np.testing.assert_array_equal(calendar_features(ts), expected)


def test_windows_across_gaps_are_masked(btcusdt_2023):
    from make_us_rich.data import validate_klines
    from make_us_rich.preprocessing import contiguous_windows

    # March 2023 holds one real outage hour (2023-03-24 13:00 is missing).
    klines, report = validate_klines(
        btcusdt_2023[btcusdt_2023["timestamp"].dt.month == 3]
    )
    assert report.missing_candles == 1
    idx = pd.DatetimeIndex(klines["timestamp"])
    kept = contiguous_windows(idx, 24, pd.Timedelta(hours=1))
    # exactly the 24 windows whose rows or target straddle the missing hour are left out
    assert len(kept) == len(idx) - 24 and int((~kept).sum()) == 24
    # brute force on the index: a window is kept iff its L+1 rows are consecutive hours
    brute = np.array([(np.diff(idx[i : i + 25].asi8) == 3_600 * 10**9).all() for i in range(len(idx) - 24)])
    np.testing.assert_array_equal(kept, brute)
