"""``make docs-assets``: the pictures of the documentation, from a real run on the bundled sample.

Trains the default model (preset ``fast``) on the whole BTCEUR sample with ``mkrich train``'s
workflow, copies every plot it writes into ``docs/assets/`` and records the run's figures in
``docs/assets/run.json``, so that the numbers quoted beside the pictures can be checked.
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
    metrics, card = run.metrics, run.card
    summary = {
        "what": f"mkrich train --source sample --symbol {SYMBOL} (default config), written by docs/make_assets.py",
        "data": card.get("data", {}),
        "config": TrainConfig().to_dict(),
        "training": metrics.get("training", {}),
        "test": metrics.get("test", {}),
        "gate": metrics.get("gate", {}),
        "plots": [p.name for p in plots],
    }
    (ASSETS / "run.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    for png in plots:
        print(f"wrote {ASSETS / png.name} ({(ASSETS / png.name).stat().st_size / 1024:.0f} KiB)")
    test = metrics.get("test", {})
    print(f"test RMSE model {test.get('model', {}).get('rmse')}, persistence "
          f"{test.get('persistence', {}).get('rmse')}, ratio {test.get('ratio', {}).get('rmse')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
