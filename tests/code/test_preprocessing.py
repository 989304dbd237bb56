"""Code tests of the preprocessing stages on real klines (the bundled sample)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from make_us_rich.errors import ConfigError, InsufficientHistoryError
from make_us_rich.preprocessing import (
    FEATURE_COLUMNS,
    create_sequences,
    extract_features_from_dataset,
    load_scaler,
    preprocess,
    required_rows,
    save_scaler,
    scale_data,
    split_data,
    split_sequences,
)


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


def test_scaler_fits_on_train_only(features):
    train, test = split_data(features, 0.1)
    train_s, test_s, scaler = scale_data(train, test)
    np.testing.assert_allclose(scaler.data_min_, train.min().to_numpy())
    np.testing.assert_allclose(scaler.data_max_, train.max().to_numpy())
    varying = train.nunique() > 1
    np.testing.assert_allclose(train_s.loc[:, varying].min(), -1.0, atol=1e-12)
    np.testing.assert_allclose(train_s.loc[:, varying].max(), 1.0, atol=1e-12)
    # The test set is scaled with the train parameters, by hand: 2 (x - min) / (max - min) - 1.
    lo, hi = train["close"].min(), train["close"].max()
    np.testing.assert_allclose(test_s["close"], 2 * (test["close"] - lo) / (hi - lo) - 1, rtol=1e-12)
    # Values outside the train range are not clipped: train ends in ISO week 50, test reaches 52.
    assert test_s["week_of_year"].max() > 1.05
    assert list(test_s.columns) == list(FEATURE_COLUMNS)
    pd.testing.assert_index_equal(test_s.index, test.index)


def test_scaler_persists_as_pickle_and_json_exactly(tmp_path, features):
    train, test = split_data(features, 0.1)
    _, test_s, scaler = scale_data(train, test)
    pkl, js = save_scaler(scaler, tmp_path)
    params = json.loads(js.read_text())
    assert params["feature_names"] == list(FEATURE_COLUMNS)
    assert params["feature_range"] == [-1.0, 1.0]
    for loaded in (load_scaler(js), load_scaler(tmp_path), load_scaler(pkl)):
        out = loaded.transform(test)
        np.testing.assert_array_equal(out, test_s.to_numpy())  # bit-exact
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


def test_split_sequences_latest_are_validation(features):
    X, y = create_sequences(features, "close", 24)
    X_tr, y_tr, X_va, y_va = split_sequences(X, y, 0.2)
    assert len(X_va) == int(np.ceil(len(X) * 0.2)) and len(X_tr) + len(X_va) == len(X)
    np.testing.assert_array_equal(X_va[0], X[len(X_tr)])
    np.testing.assert_array_equal(y_tr[-1], y[len(X_tr) - 1])


def test_preprocess_end_to_end(sample_btceur):
    res = preprocess(sample_btceur, 24)
    s = res.summary()
    assert s["train_rows"] + s["test_rows"] == len(sample_btceur)
    assert s["train_windows"] + s["val_windows"] == s["train_rows"] - 24
    assert s["test_windows"] == s["test_rows"] - 24
    assert res.X_test.shape[1:] == (24, len(FEATURE_COLUMNS))
    # y_test is the scaled close of the test rows after the first window.
    np.testing.assert_allclose(res.y_test, res.test["close"].to_numpy()[24:].astype(np.float32))


def test_too_little_history_says_how_many_rows(sample_btceur):
    need = required_rows(120)
    assert need == 1201  # ceil(10 % of 1201) = 121 test rows: one window of 120 + its target
    res = preprocess(sample_btceur.iloc[:need], 120)
    assert len(res.X_test) >= 1 and len(res.X_val) >= 1 and len(res.X_train) >= 1
    with pytest.raises(InsufficientHistoryError, match=r"need at least 1201\. Fetch more history"):
        preprocess(sample_btceur.iloc[: need - 1], 120)


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
    res = preprocess(klines, 24)
    weights = np.concatenate([res.w_train, res.w_val])
    # exactly the 24 windows whose rows or target straddle the missing hour get weight 0
    assert int((weights == 0).sum()) == 24
    assert res.test_mask.all()  # the test rows (last 10 %) have no gap
    assert res.summary()["windows_across_gaps"] == 24
    # brute force on the index: a window is kept iff its L+1 rows are consecutive hours
    idx = res.train.index
    brute = np.array([(np.diff(idx[i : i + 25].asi8) == 3_600 * 10**9).all() for i in range(len(idx) - 24)])
    np.testing.assert_array_equal(contiguous_windows(idx, 24, pd.Timedelta(hours=1)), brute)
