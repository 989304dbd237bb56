"""MkDocs hooks: the parts of the site generated from the code at build time."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
API_TREE = REPO / ".cache" / "docs-api"


def _api_tree() -> None:
    """The package as installed: src/make_us_rich plus the folders pyproject maps into it
    (serving/ -> make_us_rich.serving, ...), as symlinks, for mkdocstrings' static analysis."""
    package_dir = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    root = API_TREE / "make_us_rich"
    root.mkdir(parents=True, exist_ok=True)
    targets = {p.name: p for p in (REPO / package_dir[""] / "make_us_rich").iterdir() if p.name != "__pycache__"}
    for name, folder in package_dir.items():
        if name.startswith("make_us_rich."):
            targets[name.split(".", 1)[1]] = REPO / folder
    for link in root.iterdir():
        if link.name not in targets or link.resolve() != targets[link.name].resolve():
            link.unlink()
    for name, target in targets.items():
        if not (root / name).is_symlink():
            (root / name).symlink_to(target)


# At import, before mkdocstrings' handler checks its search paths (it runs its config event first).
_api_tree()


# ------------------------------------------------------------------ pipeline parameters
#: What each pipeline parameter means, where the CLI has no help text for it. A parameter of the
#: pipeline with neither fails the build, so a new parameter cannot go undocumented.
PARAMETER_MEANING = {
    "symbols": "trading pairs, each trained in parallel (`dsl.ParallelFor`)",
    "source": "`binance` (live API), `sample` (bundled klines) or `csv:PATH`",
    "max_missing_fraction": "fail the fetch when more than this fraction of candles is missing",
    "test_size": "chronological share of rows held out for the test period",
    "val_size": "latest share of the training windows used for validation / early stopping",
    "store_uri": "model store as seen from the cluster: `s3://bucket/prefix` or a folder",
    "s3_endpoint": "S3 endpoint for publishing, e.g. `http://minio-service.kubeflow:9000`",
    "s3_region": "S3 region for publishing",
    "s3_secret": "Secret holding `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` for publish (optional)",
    "rollout_isvc": "InferenceService to roll after an accepted model (Triton loads models only at start)",
}


def _plain_help(text: str | None) -> str:
    """A flag's help as prose: argparse's ``%%`` unescaped, the ``(default: …)`` the CLI appends
    dropped (the table has its own default column)."""
    import re

    return re.sub(r"\s*\(default: [^()]*\)$", "", (text or "").replace("%%", "%"))


def _cli_flags() -> dict[str, tuple[str, str]]:
    """Pipeline parameter -> (flag, help) of ``mkrich submit``, the command that passes them."""
    import argparse

    from make_us_rich.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    submit = subparsers.choices["submit"]
    flags = {a.dest: (a.option_strings[-1], _plain_help(a.help)) for a in submit._actions if a.option_strings}
    flags.setdefault("store_uri", flags.get("store", ("", "")))
    return flags


def _default(value) -> str:
    if value is None or value == "":
        return "`\"\"`"
    return f"`{value}`"


def pipeline_parameters_table() -> str:
    """The parameters of ``hourly-training`` from its compiled interface (names, types,
    defaults), with the ``mkrich submit|schedule`` flag and what it means."""
    from make_us_rich.pipelines.hourly_training import hourly_training

    flags = _cli_flags()
    rows = ["| parameter | type | default | `mkrich submit` / `schedule` | meaning |", "|---|---|---|---|---|"]
    missing = []
    for name, spec in hourly_training.component_spec.inputs.items():
        flag, help_text = flags.get(name, ("", ""))
        meaning = PARAMETER_MEANING.get(name) or help_text
        if not meaning:
            missing.append(name)
        default = spec.default if spec.optional else None
        rows.append(f"| `{name}` | {spec.type} | {_default(default)} | {f'`{flag}`' if flag else '-'} | {meaning} |")
    if missing:
        raise ValueError(f"pipeline parameter(s) without a description: {', '.join(missing)}; "
                         "add them to PARAMETER_MEANING in docs/hooks.py")
    stale = set(PARAMETER_MEANING) - set(hourly_training.component_spec.inputs)
    if stale:
        raise ValueError(f"docs/hooks.py describes parameters the pipeline no longer has: {', '.join(sorted(stale))}")
    return "\n".join(rows)


# ------------------------------------------------------------------ changelog
def changelog() -> str:
    """The history of the repository, newest first, one line per commit, grouped by day."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "log", "--no-merges", "--date=short", "--format=%ad%x09%h%x09%s"],
            capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "*(no git history here: the changelog is generated from `git log` in a clone)*"
    lines, day = [], None
    for entry in out.splitlines():
        date, sha, subject = entry.split("\t", 2)
        if date != day:
            lines += ["", f"## {date}", ""]
            day = date
        lines.append(f"- {subject} (`{sha}`)")
    return "\n".join(lines).strip()


GENERATED = {
    "<!-- generated: pipeline-parameters -->": pipeline_parameters_table,
    "<!-- generated: changelog -->": changelog,
}


def on_page_markdown(markdown: str, page, **_):
    for marker, make in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


# ------------------------------------------------------------------ API pages
#: Sphinx roles in the docstrings (``:class:`~pkg.Name```): Markdown renders the name as code and
#: leaves the role's text before it, so the API pages showed ``:class:`` literally.
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):<code>(~?)([^<]+)</code>")


def strip_roles(html: str) -> str:
    """``:class:<code>~a.b.C</code>`` -> ``<code>C</code>`` (``~`` keeps the last name only)."""
    return _ROLE.sub(lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html)


def on_page_content(html: str, page, **_):
    return strip_roles(html)
