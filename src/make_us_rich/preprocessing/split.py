"""Stage 3: chronological train/test split. Time is never shuffled."""

from __future__ import annotations

import math

import pandas as pd

from make_us_rich.errors import ConfigError, InsufficientHistoryError

#: The chronological holdouts: the last 10 % of the rows for the test, the latest 20 % of the
#: train windows for validation.
DEFAULT_TEST_SIZE = 0.1
DEFAULT_VAL_SIZE = 0.2


def holdout_size(n: int, fraction: float) -> int:
    """Rows (or windows) held out at the end: ``ceil(n * fraction)``, so a non-zero fraction
    always holds out at least one."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"a holdout fraction must be between 0 and 1 (exclusive), got {fraction}")
    return math.ceil(n * fraction)


def split_data(data: pd.DataFrame, test_size: float = DEFAULT_TEST_SIZE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """First ``1 - test_size`` of the rows -> train, the rest -> test.

    Every row lands in exactly one set, in order; the test set is the latest.
    """
    n = len(data)
    n_test = holdout_size(n, test_size)
    if n - n_test < 1:
        raise InsufficientHistoryError(
            f"cannot split {n} row(s) into train and test with test_size={test_size}"
        )
    return data.iloc[: n - n_test], data.iloc[n - n_test :]
