"""The live progress line of ``mkrich run``: the train step's epoch lines become an epoch bar on
a terminal; nothing but the finished-step lines when the output is not a terminal."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import termios
import time

from make_us_rich.pipelines.terminal import LiveStatus, LogTee
from make_us_rich.progress import epoch_line, parse_epoch
from make_us_rich.testing import wait_until


def test_epoch_lines_round_trip():
    line = epoch_line(3, 20, loss=0.41234, val_loss=0.398)
    assert line == "epoch 3/20 loss=0.4123 val_loss=0.398"
    assert parse_epoch(f"INFO train: {line}") == (3, 20)
    assert parse_epoch("reading 3/20 windows") is None


def test_the_running_step_is_redrawn_in_place_with_its_epoch_bar():
    terminal = io.StringIO()
    live = LiveStatus(terminal, enabled=True, interval=0.01)
    tee = LogTee(io.StringIO(), watch=live.watch)
    live.start("train-lstm", "BTCEUR")
    wait_until(lambda: "train-lstm" in terminal.getvalue(), 5, 0.01, what="the live line drawn")
    assert "epoch" not in terminal.getvalue()  # no bar before the first epoch ends
    line = epoch_line(1, 4, loss=0.5, val_loss=0.6)
    tee.write("some log line\n" + line[:7])  # a line can arrive in pieces
    tee.write(line[7:] + "\n")
    wait_until(lambda: "epoch 1/4" in terminal.getvalue(), 5, 0.01, what="the live line redrawn")
    assert "\r  ..     train-lstm         BTCEUR   00:00" in terminal.getvalue()  # redrawn in place
    drawn = terminal.getvalue().split("\r")[-1]
    assert "[#####               ] epoch 1/4" in drawn  # a quarter of the bar
    ticks = terminal.getvalue().count("\r")
    wait_until(lambda: terminal.getvalue().count("\r") > ticks + 2, 5, 0.01, what="the ticker's redraws")
    live.print("  ok  train-lstm", lambda line: terminal.write(line + "\n"))
    live.close()
    shown = terminal.getvalue()
    # the finished-step line replaces the status line (blanked by tqdm), nothing is drawn after it
    blanked, finished = shown.rsplit("\r", 2)[1:]
    assert blanked.strip() == "" and len(blanked) > 40 and finished == "  ok  train-lstm\n"
    assert live.bar is None


def drawn_on_a_pty(columns: int, rows: int, step: str, symbol: str, epoch: tuple[int, int]) -> str:
    """The last status line a LiveStatus draws on a real pseudo-terminal of that size."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    terminal = os.fdopen(slave, "w")
    try:
        live = LiveStatus(terminal, enabled=True, interval=60)
        live.start(step, symbol)
        live.watch(epoch_line(*epoch, loss=0.5))
        terminal.flush()
        shown = b""
        while select.select([master], [], [], 0.5)[0]:  # one read may return only the first redraw
            shown += os.read(master, 65536)
        live.close()
    finally:
        terminal.close()
        os.close(master)
    return shown.decode().split("\r")[-1]


def test_the_status_line_never_wraps():
    """A wrapped line cannot be redrawn in place (the old rows would pile up): on a terminal 40
    columns wide (a real pseudo-terminal), the line is cut to 39."""
    drawn = drawn_on_a_pty(40, 24, "evaluate-and-gate", "BTCUSDT", (100, 100))
    assert "epoch 100/100" not in drawn and drawn.startswith("  ..     evaluate-and-gate")
    assert 30 < len(drawn.rstrip("\n")) <= 39, repr(drawn)


def test_off_the_terminal_only_finished_lines_are_written():
    terminal = io.StringIO()
    live = LiveStatus(terminal, enabled=False, interval=0.01)
    tee = LogTee(io.StringIO(), watch=live.watch)
    live.start("train-lstm", "BTCEUR")
    tee.write(epoch_line(1, 4, loss=0.5) + "\n")
    time.sleep(0.05)
    live.print("  ok  train-lstm", lambda line: terminal.write(line + "\n"))
    live.close()
    assert terminal.getvalue() == "  ok  train-lstm\n"


def test_a_terminal_of_size_zero_still_gets_the_status_line(monkeypatch):
    """Some pseudo-terminals report 0 columns and 0 rows (``script``, CI runners): tqdm would draw
    nothing there; the line is drawn 80 columns wide (``$COLUMNS`` when set) instead."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    drawn = drawn_on_a_pty(0, 0, "train-lstm", "BTCEUR", (1, 4))
    assert drawn.startswith("  ..     train-lstm") and "epoch 1/4" in drawn and len(drawn) <= 79
