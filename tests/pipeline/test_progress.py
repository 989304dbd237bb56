"""The live progress line of ``mkrich run``: the train step's epoch lines become an epoch bar on
a terminal; nothing but the finished-step lines when the output is not a terminal."""

from __future__ import annotations

import io
import time

from make_us_rich.pipelines.runner import _LiveStatus, _LogTee
from make_us_rich.progress import bar, epoch_line, parse_epoch
from make_us_rich.testing import wait_until


def test_epoch_lines_round_trip_and_the_bar_reads_without_a_terminal():
    line = epoch_line(3, 20, loss=0.41234, val_loss=0.398)
    assert line == "epoch 3/20 loss=0.4123 val_loss=0.398"
    assert parse_epoch(f"INFO train: {line}") == (3, 20)
    assert parse_epoch("reading 3/20 windows") is None
    assert bar(5, 20, width=10) == "[##--------]" and bar(0, 0, width=4) == "[----]"
    assert bar(25, 20, width=4) == "[####]"


def test_the_running_step_is_redrawn_in_place_with_its_epoch_bar():
    terminal = io.StringIO()
    live = _LiveStatus(terminal, enabled=True, interval=0.01)
    tee = _LogTee(io.StringIO(), watch=live.watch)
    live.start("train-lstm", "BTCEUR")
    wait_until(lambda: "train-lstm" in terminal.getvalue(), 5, 0.01, what="the live line redrawn")
    assert "epoch" not in terminal.getvalue()  # no bar before the first epoch ends
    line = epoch_line(1, 4, loss=0.5, val_loss=0.6)
    tee.write("some log line\n" + line[:7])  # a line can arrive in pieces
    tee.write(line[7:] + "\n")
    wait_until(lambda: "epoch 1/4" in terminal.getvalue(), 5, 0.01, what="the live line redrawn")
    assert "\r\x1b[2K  ..     train-lstm         BTCEUR" in terminal.getvalue()
    assert "[#####---------------] epoch 1/4" in terminal.getvalue()
    live.print("  ok  train-lstm", lambda line: terminal.write(line + "\n"))
    live.close()
    shown = terminal.getvalue()
    # the finished-step line replaces the status line, and nothing is drawn after it
    assert shown.endswith("\r\x1b[2K  ok  train-lstm\n")
    assert live.render() == ""


def test_the_status_line_never_wraps(monkeypatch):
    """A wrapped line cannot be redrawn in place (the old rows would pile up): it is cut to the
    terminal's width."""
    monkeypatch.setenv("COLUMNS", "40")
    terminal = io.StringIO()
    live = _LiveStatus(terminal, enabled=True, interval=60)
    live.start("evaluate-and-gate", "BTCUSDT")
    live.watch(epoch_line(100, 100, loss=0.5))
    live._draw()
    drawn = terminal.getvalue().split("\r\x1b[2K")[-1]
    assert len(live.render()) > 40 and len(drawn) == 39 and drawn.startswith("  ..     evaluate-and-gate")
    live.close()


def test_off_the_terminal_only_finished_lines_are_written():
    terminal = io.StringIO()
    live = _LiveStatus(terminal, enabled=False, interval=0.01)
    tee = _LogTee(io.StringIO(), watch=live.watch)
    live.start("train-lstm", "BTCEUR")
    tee.write(epoch_line(1, 4, loss=0.5) + "\n")
    time.sleep(0.05)
    live.print("  ok  train-lstm", lambda line: terminal.write(line + "\n"))
    live.close()
    assert terminal.getvalue() == "  ok  train-lstm\n"
