"""Helpers shared by the benchmarks: machine description, timing, results on disk."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def shared_data(name: str) -> Path:
    """The real klines of ../shared/data; where they are absent the benchmark is skipped (exit 0,
    so that `make bench` goes on with the benchmarks that run on the bundled sample)."""
    base = Path(os.environ.get("MKRICH_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = base / name
    if not path.is_file():
        print(
            f"SKIPPED {Path(sys.argv[0]).name}: it needs {path} (real Binance 1h klines 2018-2023, "
            "not shipped in the repository); put the file there or set MKRICH_SHARED_DATA to its "
            "folder. bench_serving.py and bench_run.py run on the bundled sample.",
            file=sys.stderr,
        )
        raise SystemExit(0)
    return path


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def timeit(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    """Median wall time over ``repeat`` calls, all times, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
