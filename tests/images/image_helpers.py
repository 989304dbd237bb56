"""Helpers of the image tests (a module of its own: every test folder has a conftest)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENGINE = os.environ.get("MKRICH_CONTAINER_ENGINE", "")
# As on a cluster (Pod Security "restricted", readOnlyRootFilesystem with an emptyDir on /tmp)
RESTRICTED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
              "--security-opt", "no-new-privileges"]
SIZES: dict[str, int] = {}


def run(engine: str, ref: str, *args: str, entrypoint: str | None = None,
        options: tuple[str, ...] = (), timeout: float = 300) -> subprocess.CompletedProcess:
    """One container of ``ref``, restricted, without network unless ``options`` say otherwise."""
    cmd = [engine, "run", "--rm", *RESTRICTED]
    if "--network" not in options:
        cmd += ["--network", "none"]
    if entrypoint is not None:
        cmd += ["--entrypoint", entrypoint]
    return subprocess.run([*cmd, *options, ref, *args], capture_output=True, text=True,
                          timeout=timeout)
