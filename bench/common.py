"""Shared helpers for benchmarks: timing, medians, printing and saving results."""

import json
import os
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
    print(f"\n== {name} == (load average {_load_average()[0]:.1f} on {_cpus()} cores)")
    for row in rows:
        ratio = row.get("ratio")
        verdict = ""
        if "target" in row:
            verdict = "  OK" if row["ok"] else "  MISSED"
        if ratio is not None:
            print(
                f"  {row['figure']}: project {_number(row['project'])}{row['unit']}, baseline "
                f"{_number(row['baseline'])}{row['unit']}, ratio {ratio:.2f} (target {row.get('target', '-')}){verdict}"
            )
        else:
            print(
                f"  {row['figure']}: {_number(row['project'])}{row['unit']} (target {row.get('target', '-')}){verdict}"
            )
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    payload = {
        "name": name,
        "when": stamp,
        "machine": platform.platform(),
        "cpus": _cpus(),
        "load_average": _load_average(),
        "rows": rows,
    }
    (RESULTS_DIR / f"{name}-{stamp}.json").write_text(json.dumps(payload, indent=2, default=str))


def _number(value: float) -> str:
    """Counts as counts, measurements with three decimals."""
    return f"{value:,}" if isinstance(value, int) else f"{value:.3f}"


def _cpus() -> int:
    return os.cpu_count() or 0


def _load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load: other work on it makes every absolute figure slower."""
    return [round(value, 2) for value in os.getloadavg()]
