"""Print the third-party requirements of make-us-rich with the given extras, one per line, read
from pyproject.toml alone: the Dockerfile installs them in a layer built before the source is
copied, so that a code edit does not reinstall TensorFlow.

    python requirements.py pyproject.toml train,pipeline
"""

import re
import sys
import tomllib


def requirements(project: dict, extras: list[str]) -> list[str]:
    name = project["name"]
    optional = project.get("optional-dependencies", {})
    found, todo, seen = list(project.get("dependencies", [])), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in optional:
            sys.exit(f"unknown extra {extra!r}; extras: {', '.join(optional)}")
        seen.add(extra)
        for requirement in optional[extra]:
            self_reference = re.fullmatch(rf"{re.escape(name)}\[([^\]]+)\]", requirement.strip())
            if self_reference:
                todo += [e.strip() for e in self_reference.group(1).split(",")]
            else:
                found.append(requirement)
    return list(dict.fromkeys(found))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], "rb") as f:
        project = tomllib.load(f)["project"]
    print("\n".join(requirements(project, [e for e in sys.argv[2].split(",") if e])))
