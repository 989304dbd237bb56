"""Benchmark: `make run` end to end - the hourly-training pipeline through kfp.local on the
bundled sample (BTCEUR, default config) - wall time, peak RSS and where the time goes per
stage; beside the same work without Kubeflow (`mkrich train` + `mkrich publish` in one process)
measured in the same run, so the orchestration overhead shows as a ratio.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from common import machine, save

ANSI = re.compile(r"\x1b\[[0-9;]*m")
START = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - Executing task '([^']+)'")
END = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - Task '([^']+)' finished with status")


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the largest process in the tree, and the output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return wall, peak, out.stdout + out.stderr


def stage_times(log: str) -> dict[str, float]:
    starts, times = {}, {}
    for line in ANSI.sub("", log).splitlines():
        if m := START.match(line):
            starts.setdefault(m.group(2), m.group(1))
        elif (m := END.match(line)) and m.group(2) in starts:
            t0 = datetime.strptime(starts[m.group(2)], "%H:%M:%S.%f")
            t1 = datetime.strptime(m.group(1), "%H:%M:%S.%f")
            times[m.group(2)] = (t1 - t0).total_seconds()
    return times


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="mkrich-bench-run-"))
    mkrich = [sys.executable, "-m", "make_us_rich.cli"]
    run_wall, run_rss, log = timed([*mkrich, "run", "--store", str(work / "store"),
                                    "--pipeline-root", str(work / "root")])
    stages = stage_times(log)
    ref_wall, ref_rss, _ = timed([sys.executable, "-c", (
        "from make_us_rich.cli import main; import sys; "
        f"sys.exit(main(['train', '--no-progress', '--out', r'{work / 'model'}']) or "
        f"main(['publish', r'{work / 'model'}', '--symbol', 'BTCEUR', '--store', r'{work / 'store2'}']))"
    )])
    payload = {"benchmark": "make run", "pipeline_wall_s": run_wall, "pipeline_peak_rss_mib": run_rss,
               "stages_s": stages, "reference_train_publish_wall_s": ref_wall,
               "reference_peak_rss_mib": ref_rss, "overhead_ratio": run_wall / ref_wall,
               "machine": machine()}
    path = save("run", payload)
    m = payload["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB")
    print(f"make run (kfp.local, BTCEUR sample, default config): {run_wall:.1f} s, peak RSS {run_rss:.0f} MiB")
    for name, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<18} {seconds:6.1f} s")
    print(f"same work without Kubeflow (mkrich train + publish): {ref_wall:.1f} s, peak RSS {ref_rss:.0f} MiB")
    print(f"  pipeline / in-process: {payload['overhead_ratio']:.2f}x   -> {path}")


if __name__ == "__main__":
    main()
