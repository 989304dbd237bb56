"""Request validation of the predictor, without a server (framework-free rules)."""

from __future__ import annotations

import numpy as np
import pytest

from make_us_rich import contract
from make_us_rich.serving.tensors import (
    BadRequest,
    check_domain,
    check_forecasts,
    parse_v1_body,
    parse_v2_input,
)

L, F = 12, 10


def v2(shape, data=None, raw=None, name="window", datatype="FP32", max_batch=1024):
    return parse_v2_input(name, datatype, shape, data, raw, L, F, max_batch)


def test_v2_json_and_binary_give_the_same_windows():
    values = np.arange(2 * L * F, dtype=np.float32)
    a = v2([2, L, F], data=values.tolist())
    b = v2([2, L, F], raw=values.tobytes())
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, L, F) and a.dtype == np.float32 and a.flags.c_contiguous
    nested = v2([1, L, F], data=values[: L * F].reshape(1, L, F).tolist())
    np.testing.assert_array_equal(nested, a[:1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shape": [1, L, F], "data": [1.0] * 5}, "data holds 5 value(s) but shape [1, 12, 10] needs 120"),
        ({"shape": [1, L], "data": [1.0] * L}, "expected shape [batch, 12, 10]"),
        ({"shape": [1, L, F + 1], "data": [1.0] * L * (F + 1)}, "got [1, 12, 11]"),
        ({"shape": [0, L, F], "data": []}, "empty batch"),
        ({"shape": [1, L, F], "data": [float("nan")] * L * F}, "NaN or infinity"),
        ({"shape": [1, L, F], "data": [float("inf")] + [1.0] * (L * F - 1)}, "NaN or infinity"),
        ({"shape": [1, L, F], "data": ["a"] * L * F}, "data must be numbers"),
        ({"shape": [1, L, F], "data": ["1.5"] * L * F}, "data must be numbers"),
        ({"shape": [1, L, F], "data": [None] * L * F}, "data must be numbers"),
        ({"shape": [1, L, F], "data": [1.0] * L * F, "datatype": "INT64"}, "datatype must be FP32"),
        ({"shape": [1, L, F], "data": [1.0] * L * F, "name": "input_1"}, "unknown input 'input_1'"),
        ({"shape": [1, -L, F], "data": []}, "non-negative integers"),
        ({"shape": [1, L, F], "raw": b"\x00" * 7}, "binary data holds 7 bytes"),
        ({"shape": [3, L, F], "data": [1.0] * 3 * L * F, "max_batch": 2}, "exceeds the limit of 2"),
    ],
)
def test_v2_bad_inputs(kwargs, message):
    with pytest.raises(BadRequest) as err:
        v2(**kwargs)
    assert message in str(err.value)


def test_v1():
    window = np.ones((L, F)).tolist()
    assert parse_v1_body({"instances": [window, window]}, L, F).shape == (2, L, F)
    for body, message in [
        ({"data": []}, '{"instances": [window, ...]}'),
        ([window], '{"instances": [window, ...]}'),
        ({"instances": "x"}, "must be a list"),
        ({"instances": []}, "empty batch"),
        ({"instances": [[[1, 2], [3]]]}, "array of numbers"),
        ({"instances": [np.ones((L - 1, F)).tolist()]}, "expected shape"),
    ]:
        with pytest.raises(BadRequest) as err:
            parse_v1_body(body, L, F)
        assert message in str(err.value)


def _set(windows, name, value, window=0, row=-1):
    out = windows.copy()
    out[window, row, contract.FEATURES.index(name)] = value
    return out


def test_windows_no_features_stage_can_make_are_refused(windows):
    """Issue 19 #4: a valid window x 1e5 was answered 200 with null quantiles."""
    check_domain(windows, contract.FEATURES)  # real windows pass
    for bad, message in [
        (windows * 1e5, "window 0, row 0: 'hour' must be a whole number from 0 to 23"),
        (windows * -1, "'open' must be > 0"),
        (windows * 0, "'open' must be > 0"),
        (_set(windows, "hour", 7.5, window=2), "window 2, row 11: 'hour' must be a whole number"),
        (_set(windows, "month", 13), "'month' must be a whole number from 1 to 12, got 13"),
        (_set(windows, "norm_vol", 0), "'norm_vol' must be > 0"),
        (_set(windows, "volume_ratio", -1), "'volume_ratio' must be >= 0"),
        (_set(windows, "high", 1.0), "low <= open, close <= high"),
    ]:
        with pytest.raises(BadRequest, match="send raw features built as in training") as err:
            check_domain(bad, contract.FEATURES)
        assert message in str(err.value)
    check_domain(np.ones((1, L, F), np.float32), [f"x{i}" for i in range(F)])  # unknown features: no rule


def test_forecasts_not_finite_unordered_or_absurd_are_refused(windows):
    close = windows[:, -1, contract.FEATURES.index("close")]
    good = {"next_close": close[:, None] * 1.0, "quantile_close": close[:, None] * [0.99, 0.995, 1.0, 1.005, 1.01]}
    check_forecasts(windows, good, contract.FEATURES)
    for name, change, message in [
        ("quantile_close", lambda q: q.__setitem__((1, 4), np.inf), "quantile_close for window 1 is not finite"),
        ("next_close", lambda q: q.__setitem__((2, 0), np.nan), "next_close for window 2 is not finite"),
        ("quantile_close", lambda q: q.__setitem__((0, 1), q[0, 3] * 2), "not ordered"),
        ("quantile_close", lambda q: q.__setitem__((0, 0), 0.0), "beyond x2 or /2 within the hour"),
        ("quantile_close", lambda q: q.__setitem__((2, 4), q[2, 4] * 3), "forecast for window 2 moves"),
    ]:
        bad = {k: v.copy() for k, v in good.items()}
        change(bad[name])
        with pytest.raises(BadRequest) as err:
            check_forecasts(windows, bad, contract.FEATURES)
        assert message in str(err.value)


def test_forecasts_at_longer_horizons_are_bounded_by_the_horizon(windows):
    """The rows of quantile_close_horizons: a move beyond x2^sqrt(h) at h hours is refused (at
    24 h, x30 passes: ~2^4.9; x100 does not), so one absurd answer cannot set the horizon gauges."""
    close = windows[:, -1, contract.FEATURES.index("close")]
    spread = np.array([0.98, 0.99, 1.0, 1.01, 1.02])
    good = {"next_close": close[:, None] * 1.0, "quantile_close": close[:, None] * spread,
            "quantile_close_horizons": np.stack([close[:, None] * spread, close[:, None] * spread * [1, 1, 1, 1, 20]],
                                                axis=1)}
    check_forecasts(windows, good, contract.FEATURES, (1, 24))
    bad = {**good, "quantile_close_horizons": good["quantile_close_horizons"].copy()}
    bad["quantile_close_horizons"][0, 1, 4] *= 5  # x100 at 24 h only
    with pytest.raises(BadRequest, match=r"at a longer horizon for window 0 moves the close beyond x2\^sqrt"):
        check_forecasts(windows, bad, contract.FEATURES, (1, 24))
