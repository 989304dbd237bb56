"""What ``mkrich run`` shows while kfp.local works: kfp.local's output teed to the run's log,
and on a terminal one status line (a tqdm bar) with the running step, its symbol, the time so
far and, while a model trains, an epoch bar read from the step's epoch lines
(:mod:`make_us_rich.progress`)."""

from __future__ import annotations

import collections
import io
import os
import re
import shutil
import threading

from tqdm import tqdm

from make_us_rich.progress import parse_epoch

_STEP = "{desc} {elapsed}"
_EPOCHS = "{desc} {elapsed}  [{bar:20}] epoch {n}/{total}"


class LogTee(io.TextIOBase):
    """kfp.local's output (executor inputs, streamed component logs) goes to the log file; with
    ``echo`` also to the terminal. The last lines are kept to name the error of a failed step,
    and each line is shown to ``watch`` (the live status line reads the epochs from it)."""

    def __init__(self, log, echo=None, watch=None):
        self.log, self.echo, self.watch = log, echo, watch
        self.tail = collections.deque(maxlen=200)
        self.partial = ""  # the start of a line whose end is still to come (for ``watch``)

    def write(self, text: str) -> int:
        self.log.write(text)
        if self.echo is not None:
            self.echo.write(text)
        self.tail.extend(text.splitlines())
        if self.watch is not None:
            *complete, self.partial = (self.partial + text).split("\n")
            for line in complete:
                self.watch(line)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        if self.echo is not None:
            self.echo.flush()

    def last_error(self) -> str:
        """The last exception line (``pkg.SomeError: message``) written so far."""
        for line in reversed(self.tail):
            if re.match(r"\s*([\w.]+\.)?[A-Z]\w*(Error|Exception): ", line):
                return line.strip()
        return ""


def _fixed_size(out) -> tuple[int, int] | None:
    """None when the terminal reports its size (tqdm follows it, resizes included); else the
    columns and rows to draw in: a pseudo-terminal of size 0 (``script``, some CI runners) makes
    tqdm draw nothing at all, so take ``$COLUMNS``/``$LINES`` or 80 x 24."""
    try:
        if os.get_terminal_size(out.fileno()).columns > 0:
            return None
    except (AttributeError, OSError, ValueError):
        return None
    columns, lines = shutil.get_terminal_size((80, 24))
    return columns - 1, lines


class LiveStatus:
    """The running step as a tqdm status line, cut to the terminal's width and cleared when the
    step's finished line is printed (:meth:`print`). tqdm redraws on an update only, so a ticker
    thread refreshes it to keep the time moving. Off when the output is not a terminal: logs and
    CI keep only the finished-step lines."""

    def __init__(self, out, enabled: bool, interval: float = 0.5):
        self.out, self.enabled, self.interval = out, enabled, interval
        self.lock = threading.RLock()
        self.bar: tqdm | None = None
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, step: str, symbol: str) -> None:
        if not self.enabled:
            return
        with self.lock:
            self._clear()
            size = _fixed_size(self.out)
            self.bar = tqdm(desc=f"  ..     {step:<18} {symbol:<8}", file=self.out, leave=False,
                            dynamic_ncols=size is None, ncols=size and size[0], nrows=size and size[1],
                            bar_format=_STEP, mininterval=0)
        if self.thread is None:
            self.thread = threading.Thread(target=self._tick, name="mkrich-progress", daemon=True)
            self.thread.start()

    def _tick(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.lock:
                if self.bar is not None:
                    self.bar.refresh()

    def watch(self, line: str) -> None:
        if not self.enabled or self.bar is None or not (epoch := parse_epoch(line)):
            return
        done, total = epoch
        with self.lock:
            if self.bar is None:
                return
            if self.bar.total != total:
                self.bar.bar_format = _EPOCHS
                self.bar.reset(total=total)
            self.bar.update(done - self.bar.n)
            self.bar.refresh()  # tqdm may skip drawing an update (miniters); an epoch shows at once

    def _clear(self) -> None:
        if self.bar is not None:
            self.bar.close()  # leave=False: tqdm clears its line
            self.bar = None

    def print(self, line: str, report) -> None:
        """``report(line)`` with the status line cleared first (and the step over)."""
        with self.lock:
            self._clear()
            report(line)

    def close(self) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        with self.lock:
            self._clear()
