"""Issue 9 item 1: accepting work, `POST /api/v1/prompts/` under load, against a bare view in the same server.

The server is uvicorn serving config.asgi as in the Procfile (one process, DEBUG off) on a free
port, with BENCH_BASELINE_VIEWS=1 so that `/bench/accept/` (one INSERT, one LPUSH) is there too.
Load comes from bench/loadgen.py in its own process. First the most each endpoint takes
(closed loop), alternating, medians of the runs; then both at half of the API's own maximum
(open loop), where the API's p99 must stay under 50 ms. No worker runs: accepted prompts are
recorded and sent to the broker, and deleted afterwards.
"""

import json
import os
import subprocess
import tempfile

from django.db import connection

from bench.baseline_urls import LIST_KEY, TABLE
from bench.common import median_of, report
from bench.data import bench_tier, bench_users, prompts_clean, queue_purge
from bench.processes import BASE_DIR, PYTHON, WebServer, child_env
from jobs import queues
from jobs.events import events_redis

SECONDS = float(os.environ.get("BENCH_ACCEPT_SECONDS", "8"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CONNECTIONS = 8
USERS = 16
API_PATH = "/api/v1/prompts/"
BASELINE_PATH = "/bench/accept/"
BODY = json.dumps({"prompt_text": "Summarise the plot of Hamlet in two sentences."})


def _load(port: int, path: str, keys_file: str | None, *, rate: float | None = None) -> dict:
    command = [PYTHON, str(BASE_DIR / "bench" / "loadgen.py"), "--port", str(port), "--path", path]
    command += ["--body", BODY, "--connections", str(CONNECTIONS if rate is None else 64), "--seconds", str(SECONDS)]
    if keys_file:
        command += ["--keys", keys_file]
    if rate is not None:
        command += ["--rate", f"{rate:.1f}"]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=SECONDS + 120)
    outcome = json.loads(result.stdout)
    if outcome["errors"]:
        raise RuntimeError(f"{path}: {outcome['errors']} requests failed: {outcome['statuses']}")
    return outcome


def run() -> None:
    tier = bench_tier("b-accept", max_in_flight=1_000_000)  # every accepted prompt is sent to the broker
    users = bench_users("b-accept", USERS, tier, with_keys=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, body jsonb, created_at timestamptz)"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as keys:
        json.dump([user.api_key for user in users], keys)
    # A throttle rate that cannot cap the load: this measures accepting work, not rate limiting.
    server = WebServer(env=child_env(BENCH_BASELINE_VIEWS="1", API_USER_THROTTLE_RATE="100000000/min"))
    api, baseline, api_half, baseline_half = [], [], [], []
    try:
        for _ in range(RUNS):
            api.append(_load(server.port, API_PATH, keys.name))
            baseline.append(_load(server.port, BASELINE_PATH, None))
        half = median_of([r["per_second"] for r in api]) / 2
        for _ in range(RUNS):
            api_half.append(_load(server.port, API_PATH, keys.name, rate=half))
            baseline_half.append(_load(server.port, BASELINE_PATH, None, rate=half))
    finally:
        server.stop()
        os.unlink(keys.name)
        prompts_clean(users)
        queue_purge(*queues.PROMPT_QUEUES)
        events_redis().delete(LIST_KEY)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")

    def med(runs: list[dict], key: str) -> float:
        return median_of([r[key] for r in runs])

    throughput_ratio = med(api, "per_second") / med(baseline, "per_second")
    rows = [
        {
            "figure": f"POST /api/v1/prompts/, {CONNECTIONS} connections, most it takes, vs one INSERT + one LPUSH",
            "unit": " req/s",
            "project": med(api, "per_second"),
            "baseline": med(baseline, "per_second"),
            "ratio": throughput_ratio,
            "target": ">= 0.50",
            "ok": throughput_ratio >= 0.5,
        },
    ]
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        rows.append(
            {
                "figure": f"{label} latency at that maximum",
                "unit": " ms",
                "project": med(api, key),
                "baseline": med(baseline, key),
                "ratio": med(api, key) / med(baseline, key),
            }
        )
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        row = {
            "figure": f"{label} latency at half the API's maximum ({half:.0f} req/s, open loop)",
            "unit": " ms",
            "project": med(api_half, key),
            "baseline": med(baseline_half, key),
            "ratio": med(api_half, key) / med(baseline_half, key),
        }
        if label == "p99":
            row.update(target="< 50 ms", ok=med(api_half, key) < 50)
        rows.append(row)
    report("accept", rows)
