"""``make docs-assets`` (its dashboard step; also ``python docs/dashboard_assets.py``): the picture of
the Grafana dashboard in docs/operations.md, ``docs/assets/dashboard.png``.

Not a Grafana screenshot: a plot of the dashboard's OWN PromQL queries (read from
``manifests/components/alerting/dashboard.json``, ``$symbol`` = All) answered by a real
Prometheus on loopback that scraped, during a short real run, a real ``mkrich serve`` and a real
Pushgateway: two symbols trained (tiny preset) on the bundled sample and published with the
pipeline's publish step (which pushes the run's metrics), inference traffic walking through the
sample hour by hour (with some malformed requests), then a rejected BTCEUR model and an accepted
one that the predictor reloads. The run's timeline, the queries and how many series each panel
got are written beside it (``dashboard-run.json``).
Needs Debian's ``prometheus`` and ``prometheus-pushgateway`` (``make monitoring-tools``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from make_us_rich.testing import free_port, stop_process

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "manifests" / "components" / "alerting" / "dashboard.json"
ASSETS = Path(__file__).resolve().parent / "assets"
SYMBOLS = ("BTCEUR", "BTCUSDT")
TRAIN_DAYS = 75
#: the answers of the last run's queries: ``--replot`` draws the picture again from them
SERIES_CACHE = REPO / ".cache" / "dashboard-series.json"


def dashboard_queries(path: Path = DASHBOARD) -> list[dict]:
    """Per panel: title, unit and its targets (PromQL with ``$symbol`` as All, legend format)."""
    board = json.loads(path.read_text())
    panels = []
    for panel in sorted(board["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        targets = [{"expr": t["expr"].replace('"$symbol"', '".*"'), "legend": t.get("legendFormat", "")}
                   for t in panel.get("targets", [])]
        if "$" in " ".join(t["expr"] for t in targets):
            raise ValueError(f"panel {panel['title']!r} uses a variable other than $symbol; extend dashboard_queries")
        panels.append({"title": panel["title"], "unit": panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""),
                       "targets": targets})
    return panels


def _wait(url: str, what: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready in time:\n{log.read_text()[-3000:]}")


def _binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: run `make monitoring-tools` (apt-installs prometheus, prometheus-pushgateway)")
    return found


class Processes:
    """The daemons of the run, stopped (in reverse) at the end; their output in ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.running = tmp, []

    def start(self, name: str, cmd: list[str], ready: str) -> None:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
        self.running.append(proc)
        _wait(ready, name, proc, log)

    def stop(self) -> None:
        for proc in reversed(self.running):
            stop_process(proc)


def _windows(symbol: str, sequence_length: int):
    """Consecutive real feature windows of the sample (the newest 20 days), as the clients send."""
    import numpy as np

    from make_us_rich import contract
    from make_us_rich.data import load_klines
    from make_us_rich.preprocessing import build_features

    klines, _ = load_klines("sample", symbol)
    k = klines.tail(24 * 52).reset_index(drop=True)
    feats = build_features(k)[list(contract.FEATURES)]
    values = feats.to_numpy(np.float32)[-24 * 20:]
    return [values[i : i + sequence_length] for i in range(len(values) - sequence_length)]


def _infer(url: str, symbol: str, windows) -> int:
    import numpy as np

    from make_us_rich import contract
    from make_us_rich.predict_client import v2_request

    request = urllib.request.Request(f"{url}/v2/models/{contract.model_name(symbol)}/infer", method="POST",
                                     data=json.dumps(v2_request(np.stack(windows))).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict]:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{query}", timeout=30) as r:
        answer = json.loads(r.read())
    if answer["status"] != "success":
        raise RuntimeError(f"Prometheus refused {expr!r}: {answer}")
    return answer["data"]["result"]


def run(seconds: float, tmp: Path) -> tuple[dict, list[dict]]:
    """The real run; returns its timeline and, per dashboard panel, the series Prometheus answered."""
    from make_us_rich.stages import publish_stage
    from make_us_rich.training import preset
    from make_us_rich.workflow import train_symbol

    config = preset("tiny")
    store = tmp / "store"
    procs = Processes(tmp)
    timeline: dict = {"what": "docs/dashboard_assets.py: a real run on loopback", "events": []}

    def event(text: str) -> None:
        timeline["events"].append({"t": round(time.time() - t0, 1), "event": text})
        print(f"  {time.time() - t0:6.1f} s  {text}", flush=True)

    def train(symbol: str, name: str, **gate):
        run = train_symbol("sample", symbol, tmp / name, config, days=TRAIN_DAYS, **gate)
        return run.out_dir

    t0 = time.time()
    print("training the models (tiny preset, 75 days of the sample) ...", flush=True)
    first = {s: train(s, f"{s}-1") for s in SYMBOLS}
    rejected = train("BTCEUR", "BTCEUR-rejected", gate_tolerance=0.0, coverage_min=0.99, coverage_max=1.0)
    second = train("BTCEUR", "BTCEUR-2")
    windows = {s: _windows(s, config.sequence_length) for s in SYMBOLS}
    try:
        gateway = f"127.0.0.1:{free_port()}"
        procs.start("pushgateway", [_binary("prometheus-pushgateway"), f"--web.listen-address={gateway}",
                                    "--persistence.file="], f"http://{gateway}/-/ready")
        os.environ["MKRICH_PUSHGATEWAY_URL"] = f"http://{gateway}"
        for symbol in SYMBOLS:
            result = publish_stage(first[symbol], symbol, str(store))
        serve = f"127.0.0.1:{free_port()}"
        procs.start("serve", [str(Path(sys.executable).parent / "mkrich"), "serve", "--store", str(store),
                              "--symbols", ",".join(SYMBOLS), "--port", serve.split(":")[1],
                              "--reload-interval", "1"], f"http://{serve}/v2/health/ready")
        prom = f"127.0.0.1:{free_port()}"
        (tmp / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "mkrich-predictor", "static_configs": [{"targets": [serve]}]},
                {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [gateway]}]},
            ],
        }))
        procs.start("prometheus", [_binary("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address={prom}"],
                    f"http://{prom}/-/ready")
        start = time.time()
        event(f"published {', '.join(SYMBOLS)} (accepted: {result['status']}), mkrich serve and Prometheus up")
        done = {"rejected": False, "second": False}
        step, codes = 0, {}
        while time.time() - start < seconds:
            elapsed = time.time() - start
            if elapsed > seconds * 0.35 and not done["rejected"]:
                result = publish_stage(rejected, "BTCEUR", str(store))
                event(f"published a BTCEUR model the gate {result['status']}")
                done["rejected"] = True
            if elapsed > seconds * 0.6 and not done["second"]:
                result = publish_stage(second, "BTCEUR", str(store))
                event(f"published a new BTCEUR model ({result['status']}): the predictor reloads it")
                done["second"] = True
            hour = (step // 4) % len(windows["BTCEUR"])  # one simulated hour a second
            for symbol in SYMBOLS:
                code = _infer(f"http://{serve}", symbol, [windows[symbol][hour]])
                codes[code] = codes.get(code, 0) + 1
            if step % 10 == 0:  # a client sending the wrong window length: 400, not counted as 5xx
                code = _infer(f"http://{serve}", "BTCEUR", [windows["BTCEUR"][hour][:-2]])
                codes[code] = codes.get(code, 0) + 1
            step += 1
            time.sleep(0.25)
        end = time.time()
        event(f"traffic ended: {sum(codes.values())} requests, by status {dict(sorted(codes.items()))}")
        time.sleep(2)  # the last scrape
        panels = dashboard_queries()
        for panel in panels:
            for target in panel["targets"]:
                target["series"] = _query_range(f"http://{prom}", target["expr"], start, end, 1.0)
        timeline["start"], timeline["end"], timeline["start_unix"] = start - t0, end - t0, start
        return timeline, panels
    finally:
        procs.stop()
        os.environ.pop("MKRICH_PUSHGATEWAY_URL", None)


def _legend(fmt: str, labels: dict) -> str:
    out = fmt
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out or ", ".join(f"{k}={v}" for k, v in labels.items())


#: one colour per symbol in every panel; a series' kind (median, 5 %, p99, ...) is its line style
SYMBOL_COLOURS = {"BTCEUR": "tab:blue", "BTCUSDT": "tab:orange"}
OTHER_COLOURS = ("tab:green", "tab:red", "tab:purple", "tab:brown")
STYLES = ("-", "--", "-.", ":")


def _symbol(labels: dict) -> str:
    name = labels.get("symbol") or labels.get("model") or labels.get("model_name", "")
    return name.split("-")[0].upper()


def plot(timeline: dict, panels: list[dict], out: Path) -> None:
    """Readable at the docs' page width: large type, each panel's legend below it (never over
    its lines), a colour per symbol and a line style per query; the first symbol drawn wide and
    pale under the second, so that two symbols with the same values stay both visible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(14, 4.6 * rows), dpi=80)
    start = timeline["start"]
    for ax, panel in zip(axes.flat, panels, strict=False):
        others = iter(OTHER_COLOURS)
        for style, target in zip(STYLES, panel["targets"], strict=False):
            drawn: set[str] = set()  # a symbol's second series of one query (e.g. status 400): marked
            for series in target["series"]:
                symbol = _symbol(series["metric"])
                marker = {"marker": "o", "markevery": 25, "ms": 6} if symbol in drawn else {}
                drawn.add(symbol)
                colour = SYMBOL_COLOURS.get(symbol) or next(others, "black")
                first = symbol == next(iter(SYMBOL_COLOURS))
                t = [float(ts) - timeline["start_unix"] for ts, _ in series["values"]]
                v = [float(x) for _, x in series["values"]]
                ax.plot(t, v, style, color=colour, lw=3.2 if first else 1.4, alpha=0.5 if first else 1.0,
                        label=_legend(target["legend"], series["metric"]), **marker)
        for e in timeline["events"][1:-1]:
            ax.axvline(e["t"] - start, color="grey", ls=":", lw=1.0)
        ax.set_title(panel["title"], fontsize=14, fontweight="bold")
        ax.set_xlabel("seconds into the run", fontsize=11)
        if panel["unit"] not in ("", "none", "short"):
            ax.set_ylabel(panel["unit"], fontsize=11)
        ax.tick_params(labelsize=10)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=10, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
                      frameon=False)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("The dashboard's own queries on a real short run (Prometheus's answers, not a Grafana "
                 "screenshot)\nblue BTCEUR, orange BTCUSDT (drawn over it: where only orange shows, "
                 "they coincide); dotted verticals: a rejected BTCEUR model,\nthen a new accepted one "
                 "reloaded; one sample hour per second", fontsize=14)
    fig.tight_layout(rect=(0, 0, 1, 0.97), h_pad=2.0)
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=400,
                        help="length of the traffic (default 400: the dashboard's rates look back 5 minutes)")
    parser.add_argument("--out", type=Path, default=ASSETS / "dashboard.png")
    parser.add_argument("--replot", action="store_true",
                        help=f"draw again from the last run's answers ({SERIES_CACHE.relative_to(REPO)}), no run")
    args = parser.parse_args(argv)
    if args.replot:
        cached = json.loads(SERIES_CACHE.read_text())
        plot(cached["timeline"], cached["panels"], args.out)
        print(f"wrote {args.out} from {SERIES_CACHE}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        timeline, panels = run(args.seconds, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    SERIES_CACHE.parent.mkdir(parents=True, exist_ok=True)
    SERIES_CACHE.write_text(json.dumps({"timeline": timeline, "panels": panels}))
    plot(timeline, panels, args.out)
    answered = {p["title"]: sum(len(t["series"]) for t in p["targets"]) for p in panels}
    record = {**timeline, "series_per_panel": answered,
              "queries": {p["title"]: [t["expr"] for t in p["targets"]] for p in panels}}
    args.out.with_name(f"{args.out.stem}-run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB); series per panel: {answered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
