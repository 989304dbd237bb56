"""One installable namespace: every package on disk is listed in pyproject.toml and importable
as make_us_rich.*; the design card's folders are where they should be."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _config():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_on_disk() -> set[str]:
    found = set()
    mapping = _config()["package-dir"]
    for package, folder in mapping.items():
        base = REPO / folder
        if package == "":
            for init in base.rglob("__init__.py"):
                found.add(".".join(init.parent.relative_to(base).parts))
        else:
            for init in base.rglob("__init__.py"):
                rel = init.parent.relative_to(base).parts
                found.add(".".join((package, *rel)))
    return found


def test_every_package_is_listed_and_importable():
    listed = set(_config()["packages"])
    assert _packages_on_disk() == listed
    for name in sorted(listed):
        importlib.import_module(name)


def test_design_card_folders_map_into_the_namespace():
    mapping = _config()["package-dir"]
    assert mapping["make_us_rich.serving"] == "serving"
    assert mapping["make_us_rich.components"] == "components"
    assert mapping["make_us_rich.pipelines"] == "pipelines"
    import make_us_rich.components
    import make_us_rich.pipelines
    import make_us_rich.serving

    assert Path(make_us_rich.serving.__file__).parent == REPO / "serving"
    assert Path(make_us_rich.components.__file__).parent == REPO / "components"
