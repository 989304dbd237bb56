"""docs/deploy.md's commands as written: every `mkrich …` line of its shell blocks is accepted by
the real CLI, and each `mkrich submit`/`schedule` runs against a KFP API (the fake one on
loopback, standing in for the port-forward) and publishes where an overlay's workloads read: the
store, S3 endpoint and region, namespace and symbols of its mkrich-schedule ConfigMap."""

from __future__ import annotations

import re
import shlex

import pytest
from deploy_tools import REPO

from make_us_rich.cli import build_parser, main
from make_us_rich.testing.fake_kfp import FakeKFP

PAGE = REPO / "docs" / "deploy.md"


def commands() -> list[list[str]]:
    """The `mkrich` command lines of the page's bash blocks (continuations joined)."""
    found = []
    for block in re.findall(r"^```bash\n(.*?)^```$", PAGE.read_text(), re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            # run here, or in a container (`kubectl exec … -- mkrich …`)
            starts = [i for i, w in enumerate(words) if w == "mkrich" and (i == 0 or words[i - 1] == "--")]
            found.extend(words[i + 1:] for i in starts)
    return found


def _settings(rendered, overlay: str) -> dict[str, str]:
    (cm,) = [d for d in rendered[f"kustomize:overlays/{overlay}"]
             if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mkrich-schedule"]
    return cm["data"]


def test_every_documented_command_parses():
    found = commands()
    assert {c[0] for c in found} >= {"submit", "predict", "console"}, found
    parser = build_parser()
    for argv in found:
        parser.parse_args(argv)  # exits (SystemExit) with the CLI's message on a wrong flag


@pytest.mark.parametrize("argv", [c for c in commands() if c[0] in ("submit", "schedule")],
                         ids=lambda c: " ".join(c[:6]))
def test_documented_submit_runs_and_publishes_where_serving_reads(argv, rendered, capsys):
    options = dict(zip(argv[1::2], argv[2::2], strict=True))  # --flag value pairs only
    overlays = {name: _settings(rendered, name) for name in ("local-kind", "prod")}
    # the overlay this command feeds: the one whose store it names
    (overlay,) = [name for name, s in overlays.items() if s["STORE_URI"] == options.get("--store")]
    settings = overlays[overlay]
    assert options["--s3-endpoint"] == settings["S3_ENDPOINT"], overlay
    assert options.get("--s3-region", "us-east-1") == settings["S3_REGION"], overlay
    assert options.get("--namespace", "kubeflow") == settings["KFP_NAMESPACE"], overlay
    assert options["--symbols"] == settings["SYMBOLS"], overlay
    with FakeKFP() as kfp:
        run = [kfp.url if previous == "--host" else word for previous, word in zip(["", *argv], argv, strict=False)]
        assert main(run) == 0, capsys.readouterr().err
        (post,) = kfp.calls("POST", "/runs") or kfp.calls("POST", "/recurringruns")
    parameters = post["body"]["runtime_config"]["parameters"]
    assert parameters["store_uri"] == settings["STORE_URI"]
    assert parameters["s3_endpoint"] == settings["S3_ENDPOINT"]
    assert parameters["symbols"] == settings["SYMBOLS"].split(",")
