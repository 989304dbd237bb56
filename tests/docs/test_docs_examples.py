"""The docs cannot rot: the fenced blocks of the Quickstart and the Serving API page marked
``<!-- test -->`` are run as written (bash, or Python through the venv's interpreter), and the
``<!-- expect -->`` block after one must match its output (``…`` matches anything).

Only the environment differs from a user's shell, to keep the run isolated and short: a free port
instead of 8080 (the text's ``8080`` is replaced), a temporary store and pipeline root, 75 days of
the sample (``RUN_ARGS``: the volatility features need ~30 days of warm-up before the first window), and a serving token so that the auth examples are exercised.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from make_us_rich.testing import free_port, missing_tool

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
BLOCK = re.compile(r"^(?:<!-- (?P<marker>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow


@dataclass
class Block:
    marker: str
    lang: str
    body: str


def blocks(page: str) -> list[Block]:
    return [Block(m["marker"] or "", m["lang"], m["body"]) for m in BLOCK.finditer((DOCS / page).read_text())]


def marked_blocks(page: str) -> list[tuple[Block, Block | None]]:
    """The blocks marked for the test, each with the ``expect`` block that follows it (if any).
    A bash block with no marker at all is an error: it would rot unseen."""
    found, all_blocks = [], blocks(page)
    for i, block in enumerate(all_blocks):
        if block.lang == "bash" and not block.marker:
            raise AssertionError(f"{page}: a bash block without <!-- test --> or <!-- not tested: why -->:\n{block.body}")
        if block.marker == "test":
            following = all_blocks[i + 1] if i + 1 < len(all_blocks) else None
            found.append((block, following if following and following.marker == "expect" else None))
    return found


def run_page(page: str, cwd: Path, env: dict[str, str], port: int) -> list[str]:
    """All marked blocks of a page in one bash session (a server started with ``&`` in one
    block serves the next ones); returns each block's output. Everything it started is
    stopped afterwards."""
    if shutil.which("curl") is None:
        missing_tool("curl not found (the documented examples use it): apt-get install curl")
    pairs = marked_blocks(page)
    assert pairs, f"{page} has no block marked <!-- test -->"
    separator = f"@@block-{uuid.uuid4().hex}@@"
    script = ["set -euo pipefail"]
    for block, _ in pairs:
        body = block.body.replace("8080", str(port))
        if block.lang == "python":
            body = f"python - <<'PYTHON'\n{body}\nPYTHON"
        script += [body, f"echo {separator}"]
    log = Path(env["DOCS_TEST_TMP"]) / f"{page}.log"
    # to a file, not a pipe: a server left in the background would hold a pipe open
    with log.open("w") as sink:
        proc = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=cwd, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=900)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    out = log.read_text()
    outputs = out.split(separator + "\n")
    assert proc.returncode == 0, f"{page}: a block failed (exit {proc.returncode}):\n{out[-4000:]}"
    for (block, expect), output in zip(pairs, outputs, strict=False):
        if expect is None:
            continue
        lines = output.splitlines()
        for wanted in expect.body.splitlines():
            pattern = ".*".join(re.escape(part) for part in wanted.split("…"))
            assert any(re.fullmatch(pattern, line) for line in lines), (
                f"{page}: expected a line like\n  {wanted}\nafter\n{block.body}\ngot:\n{output}"
            )
    return outputs


def user_env(tmp: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    env.update(PATH=f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}", PORT=str(port),
               DOCS_TEST_TMP=str(tmp), **extra)
    return env


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """The Quickstart page, run: make run, then serve, predict and query."""
    tmp = tmp_path_factory.mktemp("quickstart")
    port = free_port()
    env = user_env(tmp, port, STORE=str(tmp / "store"),
                   RUN_ARGS=f"--pipeline-root {tmp / 'pipeline'} --lookback-days 75")
    return tmp / "store", run_page("quickstart.md", REPO, env, port)


def test_quickstart_runs_as_written(quickstart):
    store, outputs = quickstart
    run, serve = outputs[0], outputs[1]
    assert "pipeline finished" in run and re.search(r"BTCEUR\s+accepted", run), run
    assert len(re.findall(r"^  ok  ", run, re.M)) == 9 + 1  # and the exit handler, notify-run
    assert "run summary\nhourly-training run succeeded\nBTCEUR: accepted " in run
    assert "(no webhook configured (MKRICH_NOTIFY_URL unset): summary logged only)" in run
    number = r"\d{1,3}(?:,\d{3})*\.\d\d"
    assert re.search(rf"^BTCEUR next close \(.*\): {number}$", serve, re.M), serve
    assert re.search(rf"^  50 %: {number} - {number}   90 %: {number} - {number}$", serve, re.M), serve
    assert '"quantile_close"' in serve
    assert '"name":"btceur-close"' in serve
    assert (store / "models" / "BTCEUR" / "latest.json").is_file()


def test_serving_api_examples_run_as_written(quickstart, tmp_path):
    store, _ = quickstart
    port = free_port()
    env = user_env(tmp_path, port, MKRICH_STORE=str(store), MKRICH_SERVING_TOKEN=f"docs-{uuid.uuid4().hex}")
    run_page("serving.md", tmp_path, env, port)
    assert (tmp_path / "request.json").is_file()


def test_every_bash_block_is_marked():
    for page in ("quickstart.md", "serving.md"):
        assert marked_blocks(page)
