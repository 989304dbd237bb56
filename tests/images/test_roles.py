"""Smoke per role: entry points, what each image must and must not hold, the non-root user, a
read-only root filesystem, and the Dockerfile's layer order (a code edit keeps the dependencies)."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid

import pytest

from make_us_rich.testing.fake_binance import FakeBinance

from .image_helpers import REPO, run

HAS_TF = "import importlib.util as u; print(u.find_spec('tensorflow') is not None)"


@pytest.mark.parametrize(("role", "entry", "expected"), [
    ("data", [], "fetch"),
    ("trainer", ["train", "--help"], "--sequence-length"),
    ("server", ["--help"], "--reload-interval"),
    ("console", ["--help"], "--inference-url"),
])
def test_entry_points_answer_help(engine, images, role, entry, expected):
    out = run(engine, images[role], *entry)  # data: the image's CMD is --help
    assert out.returncode == 0, out.stderr
    assert expected in out.stdout


@pytest.mark.parametrize(("role", "tensorflow"), [("data", False), ("trainer", True), ("server", False),
                                                  ("console", False)])
def test_tensorflow_only_in_the_trainer(engine, images, role, tensorflow):
    out = run(engine, images[role], "-c", HAS_TF, entrypoint="python")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tensorflow)


def test_console_image_has_neither_tensorflow_nor_kserve(engine, images):
    """The console calls the predictor over HTTP: no model runtime in its image."""
    probe = ("import importlib.util as u; "
             "print(*[m for m in ('tensorflow', 'keras', 'kserve', 'onnxruntime', 'fastapi', 'alembic', 'psycopg')"
             " if u.find_spec(m)])")
    out = run(engine, images["console"], "-c", probe, entrypoint="python")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["fastapi", "alembic", "psycopg"]


@pytest.mark.parametrize("role", ["data", "trainer", "server", "console"])
def test_non_root_user_no_compilers_read_only_root(engine, images, role):
    script = ("id -u; id -g; for c in gcc cc g++ make; do command -v $c || true; done; "
              "touch /opt/venv/probe 2>/dev/null && echo root-writable; "
              "touch /tmp/probe && echo tmp-writable")
    out = run(engine, images[role], "-c", script, entrypoint="sh")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["10001", "10001", "tmp-writable"], out.stdout


def test_data_image_fetches_from_the_binance_api(engine, images, sample_btceur):
    """python-binance in the data image, over HTTP to the fake Binance API on loopback."""
    with FakeBinance({"BTCEUR": sample_btceur}) as fake:
        out = run(engine, images["data"], "fetch", "--source", "binance", "--symbol", "BTCEUR",
                  "--days", "3", "--end", "2023-12-31T23:00Z", "--api-url", fake.api_url,
                  "--no-progress", "--out", "/tmp/klines.csv", options=("--network", "host"))
        requests = fake.klines_requests()
    assert out.returncode == 0, out.stderr
    assert requests and all(r["symbol"] == "BTCEUR" for r in requests)
    assert "72 candles" in out.stdout + out.stderr, out.stdout + out.stderr


def test_trainer_image_trains_and_exports(engine, images):
    """A real (tiny) training, ONNX export and parity check as uid 10001 on a read-only root."""
    out = run(engine, images["trainer"], "train", "--source", "sample", "--symbol", "BTCEUR",
              "--days", "75", "--sequence-length", "12", "--units", "8", "--epochs", "1", "--batch-size", "64",
              "--no-progress", "--out", "/tmp/model", timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "parity" in out.stdout + out.stderr


def test_code_edit_keeps_the_dependency_layers(engine, images, tmp_path):
    """Rebuild the trainer from a copy of the sources with one edited module: the layer that
    installs TensorFlow comes from the cache, only the project's own layers are rebuilt."""
    if engine != "podman":
        pytest.skip("reads podman's build log (STEP ... / Using cache)")
    context = tmp_path / "context"
    names = ["Dockerfile", ".dockerignore", "pyproject.toml", "constraints.txt", "README.md",
             "docker", "src", "serving", "components", "pipelines"]
    for name in names:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / name)
    edited = context / "src" / "make_us_rich" / "images.py"
    edited.write_text(edited.read_text() + f"\n# an edit {uuid.uuid4()}\n")  # new to the cache
    tag = "localhost/make-us-rich-layer-probe:test"
    out = subprocess.run(["podman", "build", "--format", "docker", "--pull=never", "--build-arg", "ROLE=trainer",
                          "-t", tag, str(context)], capture_output=True, text=True, timeout=900)
    subprocess.run(["podman", "rmi", tag], capture_output=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    steps = _steps(out.stdout)
    installs = [cached for step, cached in steps if "requirements.txt" in step]
    assert installs and all(installs), steps  # the dependency installs: cached
    wheel = [cached for step, cached in steps if "pip wheel" in step]
    assert wheel == [False], steps  # the project: rebuilt from the edited source


def _steps(log: str) -> list[tuple[str, bool]]:
    """(instruction, came from the cache) for each step of a podman build log."""
    steps: list[tuple[str, bool]] = []
    for line in log.splitlines():
        if re.match(r"(\[\d+/\d+\] )?STEP \d", line):
            steps.append((line, False))
        elif line.startswith("--> Using cache") and steps:
            steps[-1] = (steps[-1][0], True)
    return steps
