"""The built images, run as a restricted pod runs them (`make test-images`, which builds them
first and sets MKRICH_CONTAINER_ENGINE; without it these tests are skipped)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from make_us_rich.images import ROLES, image

from .image_helpers import ENGINE, REPO, SIZES


@pytest.fixture(scope="session")
def engine() -> str:
    if not ENGINE:
        pytest.skip("image tests run through `make test-images` (builds the images first)")
    if not shutil.which(ENGINE):
        pytest.fail(f"{ENGINE} not found; run `make test-images`, which installs podman where no Docker engine runs")
    return ENGINE


@pytest.fixture(scope="session")
def images(engine) -> dict[str, str]:
    """The image of each role as the compiled pipeline names it, built and tagged locally
    (only the roles of MKRICH_IMAGE_ROLES when set, as `.ci/images.sh build` builds them)."""
    refs = {}
    for role in os.environ.get("MKRICH_IMAGE_ROLES", "").split() or ROLES:
        ref = image(role)
        out = subprocess.run([engine, "image", "inspect", ref], capture_output=True, text=True)
        assert out.returncode == 0, f"{ref} is not built here; run `make test-images`\n{out.stderr}"
        SIZES[ref] = int(json.loads(out.stdout)[0]["Size"])
        refs[role] = ref
    return refs


@pytest.fixture(scope="session")
def docker_api(engine):
    """A Docker-compatible API for the ``docker`` package that kfp.local's DockerRunner uses:
    podman's (`podman system service`) on a socket of our own, or the Docker engine's."""
    import docker

    if engine == "docker":
        yield os.environ.get("DOCKER_HOST", "")
        return
    state = Path(os.environ.get("MKRICH_PODMAN_DIR", REPO / ".cache" / "podman"))
    state.mkdir(parents=True, exist_ok=True)
    socket = state / "api.sock"
    socket.unlink(missing_ok=True)
    host = f"unix://{socket}"
    log = (state / "api.log").open("w")
    service = subprocess.Popen(["podman", "system", "service", "--time=0", host],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                docker.DockerClient(base_url=host).ping()
                break
            except Exception:
                if service.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"podman system service did not start:\n{(state / 'api.log').read_text()}") from None
                time.sleep(0.2)
        previous = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = host
        yield host
    finally:
        service.terminate()
        service.wait(timeout=30)
        log.close()
    if previous is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = previous


def pytest_terminal_summary(terminalreporter):
    if SIZES:
        terminalreporter.section("image sizes")
        for ref, size in SIZES.items():
            terminalreporter.write_line(f"{size / 1e6:8.0f} MB  {ref}")
