"""``make docs-assets``: the pictures of the documentation, from a real run on the bundled sample.

Trains the default quantile model (preset ``fast``) on the whole BTCEUR sample with ``mkrich
train``'s chain of stages, copies every plot it writes (``training_curves.png``, ``fan_chart.png``,
``calibration.png``) into ``docs/assets/``, removes pictures a run no longer makes, and records the
run's figures in ``docs/assets/run.json``, so that the numbers quoted beside the pictures can be
checked. Then the picture of the dashboard (``dashboard.png``, docs/dashboard_assets.py).

Then the console's pages: runs the browser tests' screenshot step (``tests/console_browser``: real
Chromium, the console on the sample calling a real ``mkrich serve``), which captures every page on
a laptop and a phone, and copies those pictures into ``docs/assets/console/``.

    python docs/make_assets.py [plots] [dashboard] [console]     # all three when none is named
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
REPO = ASSETS.parents[1]
SYMBOL = "BTCEUR"
#: the console's pages as the browser tests name their screenshots (<page>-<device>.png)
CONSOLE_PAGES = ("login", "symbols", "symbol", "forecasts", "models", "history", "runs", "run", "run-universal",
                 "tokens", "users", "api")
CONSOLE_DEVICES = ("desktop", "phone")
MAX_PICTURE_BYTES = 300_000


def console_screenshots() -> int:
    """The browser tests' screenshots of every console page into docs/assets/console/."""
    target = ASSETS / "console"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MKRICH_SCREENSHOTS": tmp, "CI": "true"}  # no chromium: fail, not skip
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "tests/console_browser/test_pages.py", "-k", "screenshot"],
                               cwd=REPO, env=env)
        if tests.returncode != 0:
            print("the console's browser tests failed; no screenshots copied", file=sys.stderr)
            return tests.returncode
        wanted = [f"{page}-{device}.png" for page in CONSOLE_PAGES for device in CONSOLE_DEVICES]
        missing = [name for name in wanted if not (Path(tmp) / name).is_file()]
        if missing:
            print(f"the browser tests wrote no {', '.join(missing)}", file=sys.stderr)
            return 1
        too_big = [name for name in wanted if (Path(tmp) / name).stat().st_size > MAX_PICTURE_BYTES]
        if too_big:
            print(f"over {MAX_PICTURE_BYTES // 1000} kB: {', '.join(too_big)}", file=sys.stderr)
            return 1
        target.mkdir(parents=True, exist_ok=True)
        for stale in set(target.glob("*.png")) - {target / name for name in wanted}:
            stale.unlink()
        for name in wanted:
            shutil.copyfile(Path(tmp) / name, target / name)
            print(f"wrote {target / name} ({(target / name).stat().st_size / 1024:.0f} KiB)")
    return 0


STEPS = ("plots", "dashboard", "console")


def main(argv: list[str]) -> int:
    steps = argv or list(STEPS)
    unknown = set(steps) - set(STEPS)
    if unknown:
        sys.exit(f"unknown step {', '.join(sorted(unknown))}; steps: {', '.join(STEPS)}")
    if "plots" in steps:
        training_plots()
    if "dashboard" in steps:
        from dashboard_assets import main as dashboard_picture  # docs/ is this script's folder

        if dashboard_picture([]) != 0:
            return 1
    return console_screenshots() if "console" in steps else 0


def training_plots() -> None:
    from make_us_rich.training import TrainConfig
    from make_us_rich.workflow import train_symbol

    ASSETS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = train_symbol("sample", SYMBOL, Path(tmp) / "model", TrainConfig())
        plots = sorted(run.out_dir.glob("*.png"))
        for png in plots:
            shutil.copyfile(png, ASSETS / png.name)
    for stale in set(ASSETS.glob("*.png")) - {ASSETS / p.name for p in plots} - {ASSETS / "dashboard.png"}:
        stale.unlink()
        print(f"removed {stale} (no longer made by a run)")
    metrics, card = run.metrics, run.card
    summary = {
        "what": f"mkrich train --source sample --symbol {SYMBOL} (default config), written by docs/make_assets.py",
        "data": card.get("data", {}),
        "config": TrainConfig().to_dict(),
        "training": metrics.get("training", {}),
        "test": metrics.get("test", {}),
        "gate": metrics.get("gate", {}),
        "parity": metrics.get("parity", {}),
        "plots": [p.name for p in plots],
    }
    (ASSETS / "run.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    for png in plots:
        print(f"wrote {ASSETS / png.name} ({(ASSETS / png.name).stat().st_size / 1024:.0f} KiB)")
    test = metrics.get("test", {})
    ratio, price = test.get("ratio", {}), test.get("price", {})
    cov90 = test.get("model", {}).get("intervals", {}).get("90", {}).get("coverage")
    print(f"test: {test.get('n')} hours, pinball/A {ratio.get('pinball_vs_empirical')}, "
          f"pinball/GARCH {ratio.get('pinball_vs_garch_t')}, pinball/HAR {ratio.get('pinball_vs_har')}, "
          f"cov90 {cov90}, median RMSE {price.get('model', {}).get('rmse')} vs persistence "
          f"{price.get('persistence', {}).get('rmse')}; gate passed: {metrics.get('gate', {}).get('passed')}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
