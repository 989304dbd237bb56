"""``make docs-assets``: the pictures of the documentation, from a real run on the bundled sample.

Trains the default quantile model (preset ``fast``) on the whole BTCEUR sample with ``mkrich
train``'s chain of stages, copies every plot it writes (``training_curves.png``, ``fan_chart.png``,
``calibration.png``) into ``docs/assets/``, removes pictures a run no longer makes, and records the
run's figures in ``docs/assets/run.json``, so that the numbers quoted beside the pictures can be
checked. Then the picture of the dashboard (``dashboard.png``, docs/dashboard_assets.py).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
SYMBOL = "BTCEUR"


def main() -> int:
    from make_us_rich.training import TrainConfig
    from make_us_rich.training.workflow import train_symbol

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
    from dashboard_assets import main as dashboard_picture  # docs/ is this script's folder

    return dashboard_picture([])


if __name__ == "__main__":
    sys.exit(main())
