"""Fixtures of the pipeline tests."""

from __future__ import annotations

import pytest

from make_us_rich.testing.fake_kfp import FakeKFP


@pytest.fixture
def kfp_api():
    """The fake Kubeflow Pipelines API on loopback, for the real ``kfp.Client``."""
    with FakeKFP() as fake:
        yield fake
