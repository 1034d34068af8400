"""`make bench`: every benchmark in bench/, on its own embedded servers (var/bench) by default."""

import importlib
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("EMBEDDED_DIR", str(BASE_DIR / "var" / "bench"))
os.environ.setdefault("EMBEDDED_DURABLE", "0")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("AI_PROVIDER", "offline")  # the bench process never calls a paid provider

BENCHMARKS = [
    "bench.bench_users",
    "bench.bench_accept",
    "bench.bench_end_to_end",
    "bench.bench_io",
    "bench.bench_search",
    "bench.bench_beat",
    "bench.bench_fair",
    "bench.bench_dashboard",
    "bench.bench_streams",
]


def main(selected: list[str]) -> None:
    """Migrate the benchmark database, then run the benchmarks named (all by default)."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    for name in BENCHMARKS:
        if not selected or any(s in name for s in selected):
            importlib.import_module(name).run()


if __name__ == "__main__":
    main(sys.argv[1:])
