"""The picture of the dashboard in docs/operations.md (docs/dashboard_assets.py): the dashboard's
own PromQL, answered by a real Prometheus after a real short run (mkrich serve, Pushgateway)."""

from __future__ import annotations

import json
import sys

import pytest
from monitoring import REPO, binary

sys.path.insert(0, str(REPO / "docs"))
import dashboard_assets  # docs/ is no package: imported from the path above

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_picture_plots_the_dashboards_own_queries():
    board = json.loads(dashboard_assets.DASHBOARD.read_text())
    panels = dashboard_assets.dashboard_queries()
    assert sorted(p["title"] for p in panels) == sorted(p["title"] for p in board["panels"])
    assert sorted(t["expr"] for p in panels for t in p["targets"]) == sorted(
        t["expr"].replace('"$symbol"', '".*"') for p in board["panels"] for t in p["targets"])
    # the committed picture was made from the dashboard as it is now, and every panel had data
    record = json.loads((REPO / "docs" / "assets" / "dashboard-run.json").read_text())
    assert record["queries"] == {p["title"]: [t["expr"] for t in p["targets"]] for p in panels}
    assert all(n > 0 for n in record["series_per_panel"].values()), record["series_per_panel"]
    png = REPO / "docs" / "assets" / "dashboard.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and 20_000 < png.stat().st_size < 300 * 1024
    assert "assets/dashboard.png" in (REPO / "docs" / "operations.md").read_text()


def test_a_short_real_run_answers_every_panel(tmp_path):
    pytest.importorskip("tensorflow")
    binary("prometheus")
    binary("prometheus-pushgateway")
    out = tmp_path / "dashboard.png"
    assert dashboard_assets.main(["--seconds", "12", "--out", str(out)]) == 0
    record = json.loads((tmp_path / "dashboard-run.json").read_text())
    assert all(n > 0 for n in record["series_per_panel"].values()), record["series_per_panel"]
    events = " | ".join(e["event"] for e in record["events"])
    assert "gate rejected" in events and "(accepted): the predictor reloads it" in events, events
    assert "400:" in events and "200:" in events
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 20_000
