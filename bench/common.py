"""Shared helpers for benchmarks: timing, medians, printing and saving results."""

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def timed(function: Callable[[], Any]) -> float:
    """Seconds one call takes."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def median_of(runs: list[float]) -> float:
    return statistics.median(runs)


def report(name: str, rows: list[dict[str, Any]]) -> None:
    """Print rows as `figure: project vs baseline (ratio, target)` and save them as JSON."""
    print(f"\n== {name} ==")
    for row in rows:
        ratio = row.get("ratio")
        verdict = ""
        if "target" in row:
            verdict = "  OK" if row["ok"] else "  MISSED"
        if ratio is not None:
            print(
                f"  {row['figure']}: project {row['project']:.3f}{row['unit']}, baseline {row['baseline']:.3f}"
                f"{row['unit']}, ratio {ratio:.2f} (target {row.get('target', '-')}){verdict}"
            )
        else:
            print(f"  {row['figure']}: {row['project']:.3f}{row['unit']} (target {row.get('target', '-')}){verdict}")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    payload = {"name": name, "when": stamp, "machine": platform.platform(), "cpus": _cpus(), "rows": rows}
    (RESULTS_DIR / f"{name}-{stamp}.json").write_text(json.dumps(payload, indent=2, default=str))


def _cpus() -> int:
    import os

    return os.cpu_count() or 0
