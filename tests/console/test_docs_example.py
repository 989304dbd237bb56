"""The ``curl`` example of docs/console.md, run as written against a console and the real
``mkrich serve``: its answer has the documented shape (the page cannot drift from the API)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from console_helpers import MEMBER, create_token, signed_in

from make_us_rich.testing import missing_tool

PAGE = Path(__file__).resolve().parents[2] / "docs" / "console.md"
BLOCK = re.compile(r"^<!-- (?P<marker>[^>]*?) -->\n```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)


def test_every_bash_block_is_marked_and_the_curl_example_runs(make_console, users, console_store, model_server):
    text = PAGE.read_text()
    fenced = re.findall(r"^```bash$", text, re.M)
    blocks = list(BLOCK.finditer(text))
    assert len([b for b in blocks if b["lang"] == "bash"]) == len(fenced), "a bash block without a marker"
    tested = [(b, blocks[i + 1]) for i, b in enumerate(blocks) if b["marker"] == "test"]
    assert len(tested) == 1 and tested[0][1]["marker"] == "expect"
    command, expected = tested[0][0]["body"], json.loads(tested[0][1]["body"])
    if shutil.which("curl") is None:
        missing_tool("curl not found (the documented example uses it): apt-get install curl")

    console = make_console(store=console_store, inference_url=model_server)
    token = create_token(signed_in(console, MEMBER))
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MKRICH_TOKEN": token, "CONSOLE_URL": console.url})
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert list(answer) == list(expected)
    assert list(answer["quantiles"]) == list(expected["quantiles"])
    for key in ("symbol", "forecast_time", "last_time"):
        assert answer[key] == expected[key]
    assert answer["last_close"] == pytest.approx(expected["last_close"])  # the same sample candle
