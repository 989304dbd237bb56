"""The reload loop of a served model: a daemon thread that polls for a new version every
``interval`` seconds until stopped, and says how it is doing, because a loop that hangs or dies
leaves a stale model served without a word: ``running``, ``stalled`` (one poll has taken longer
than ``stall_after``: S3 clients retry for minutes) or ``dead`` (the thread ended without being
stopped: only a restart cures it, so liveness fails)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ReloadLoop:
    def __init__(self, name: str, interval: float, poll: Callable[[], object], stall_after: float) -> None:
        self.name = name
        self.interval = interval
        self.poll = poll
        self.stall_after = stall_after
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._poll_started: float | None = None

    def start(self) -> bool:
        """Start the thread (once; never with an interval of 0). True if it was started now."""
        if self.interval <= 0 or self.thread:
            return False
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll_started = time.monotonic()
            try:
                self.poll()
            finally:
                self._poll_started = None

    def state(self) -> str:
        """``off`` (never started), ``running``, ``stalled`` or ``dead``."""
        if self.thread is None:
            return "off"
        if not self.thread.is_alive() and not self._stop.is_set():
            return "dead"
        started = self._poll_started
        if started is not None and time.monotonic() - started > self.stall_after:
            return "stalled"
        return "running"
