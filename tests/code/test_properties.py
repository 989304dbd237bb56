"""Property tests (hypothesis): shapes, no look-ahead and split boundaries for any sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from make_us_rich.preprocessing import create_sequences, split_data
from make_us_rich.preprocessing.split import holdout_size

fractions = st.floats(min_value=0.01, max_value=0.99)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(2, 400), features=st.integers(1, 6), length=st.integers(1, 50),
    target=st.integers(0, 5),
)
def test_sequences_shapes_and_no_look_ahead(rows, features, length, target):
    target %= features
    # Each cell holds its row number, so every value says where it came from.
    data = np.repeat(np.arange(rows, dtype=np.float32)[:, None], features, axis=1)
    if rows <= length:
        return
    X, y = create_sequences(data, target, length)
    n = rows - length
    assert X.shape == (n, length, features) and y.shape == (n,)
    label_rows = y.astype(int)
    np.testing.assert_array_equal(label_rows, np.arange(length, rows))
    # no look-ahead: every row in window i comes strictly before the row of its label
    assert (X.max(axis=(1, 2)).astype(int) < label_rows).all()
    # the window is the L rows right before the label, in order
    np.testing.assert_array_equal(X[:, -1, 0].astype(int), label_rows - 1)
    np.testing.assert_array_equal(X[:, 0, 0].astype(int), label_rows - length)


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(2, 5000), test_size=fractions)
def test_split_data_boundaries(rows, test_size):
    frame = pd.DataFrame({"v": np.arange(rows)})
    if rows - holdout_size(rows, test_size) < 1:
        return
    train, test = split_data(frame, test_size)
    assert len(train) + len(test) == rows  # every row in exactly one set
    assert len(test) >= 1 and len(test) == holdout_size(rows, test_size)
    assert train["v"].max() < test["v"].min()  # chronological
    assert abs(len(test) - rows * test_size) < 1
