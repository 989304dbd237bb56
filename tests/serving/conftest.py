"""Fixtures shared by the serving tests."""

from __future__ import annotations

import numpy as np
import pytest

from make_us_rich.store import ModelStore


@pytest.fixture(scope="session")
def windows(sample_btceur):
    """Three real feature windows of 12 hours from the end of the BTCEUR sample (with the
    volatility features' 32 days of history before them)."""
    from make_us_rich import contract
    from make_us_rich.preprocessing import build_features

    k = sample_btceur.tail(24 * 40).reset_index(drop=True)
    feats = build_features(k)[list(contract.FEATURES)]
    feats = feats.to_numpy(np.float32)[-14:]
    return np.stack([feats[i : i + 12] for i in range(3)])


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, trained_artifacts):
    """A local store with one published BTCEUR model, one per test module."""
    path = tmp_path_factory.mktemp("serving") / "store"
    ModelStore(path).publish(trained_artifacts, "BTCEUR")
    return path
