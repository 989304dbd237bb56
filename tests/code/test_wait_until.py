"""make_us_rich.testing.wait_until: the one poll loop of the test suite."""

from __future__ import annotations

import pytest

from make_us_rich.testing import wait_until


def test_returns_the_first_truthy_answer():
    answers = iter([None, 0, "", "ready", "later"])
    assert wait_until(lambda: next(answers), timeout=5, interval=0) == "ready"


def test_ignored_errors_are_not_yet_and_others_fail_at_once():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not listening yet")
        return len(calls)

    assert wait_until(flaky, timeout=5, interval=0, ignoring=(ConnectionError,)) == 3
    with pytest.raises(RuntimeError, match="exited"):
        wait_until(lambda: (_ for _ in ()).throw(RuntimeError("server exited")), timeout=5)


def test_a_timeout_names_what_was_awaited():
    with pytest.raises(TimeoutError, match="the server's log: boom"):
        wait_until(lambda: False, timeout=0.05, interval=0.01, what=lambda: "the server's log: boom")
    with pytest.raises(TimeoutError, match="a file: not within"):
        wait_until(lambda: None, timeout=0, what="a file")
