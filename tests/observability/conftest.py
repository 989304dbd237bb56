"""A Pushgateway on a free loopback port for each test that asks for one."""

from __future__ import annotations

import pytest
from monitoring import Daemon


@pytest.fixture
def pushgateway():
    gateway = Daemon("prometheus-pushgateway", "--persistence.file=")
    yield gateway
    gateway.stop()
