"""Issue 11: 500 event-stream clients on one web process (target: p99 delay under 200 ms).

One uvicorn process serving config.asgi as in the Procfile; 500 task records of one user, each
followed by one client of bench/sse_clients.py (its own process) on
`GET /api/v1/tasks/{id}/events/`. Once every client has the record's first state, this process
changes the records the way a worker does, through `jobs.services.task_progress_set` (database
update, then the event published to the task's Redis stream) and finally `task_record_update`
to SUCCESS, at BENCH_STREAM_RATE changes a second, each stamped with the wall-clock time taken
just before the change. A client notes how long after that stamp its event arrived.

Baseline, alternating with the project BENCH_RUNS times (medians reported), with the same
publisher and schedule: 500 bare subscribers (redis.asyncio, one connection each, `XREAD BLOCK`
on the task's stream) in the clients' process. That is the floor of any design reading these
streams: what the publishing path and Redis cost, without HTTP, ASGI, Django or the view.
"""

import http.client
import json
import os
import subprocess
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit

import psutil
from django.conf import settings
from django.utils import timezone

from bench.common import RESULTS_DIR, median_of, report
from bench.data import bench_tier, bench_users, records_delete
from bench.processes import BASE_DIR, PYTHON, WebServer, child_env
from jobs.events import events_redis, stream_key
from jobs.models import TaskRecord
from jobs.services import task_progress_set, task_record_update

CLIENTS = int(os.environ.get("BENCH_STREAM_CLIENTS", "500"))
RATE = float(os.environ.get("BENCH_STREAM_RATE", "250"))  # changes a second, over all tasks
PROGRESS_ROUNDS = 3  # progress changes per task before its final state
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
TASK_NAME = "bench.streams"


def _records(user: Any) -> tuple[list[str], str]:
    """CLIENTS running records of `user` and one finished one (for the warm-up); their ids."""
    old = [str(pk) for pk in TaskRecord.objects.filter(owner=user).values_list("pk", flat=True)]
    records_delete(old)
    records = TaskRecord.objects.bulk_create(
        TaskRecord(name=TASK_NAME, queue="prompts.normal", owner=user, state="STARTED", started_at=timezone.now())
        for _ in range(CLIENTS)
    )
    done = TaskRecord.objects.create(
        name=TASK_NAME, queue="prompts.normal", owner=user, state="SUCCESS", finished_at=timezone.now()
    )
    return [str(record.pk) for record in records], str(done.pk)


def _records_restart(task_ids: list[str]) -> None:
    """The records running again, their streams empty: the same start for the next set of clients."""
    TaskRecord.objects.filter(pk__in=task_ids).update(
        state="STARTED", progress_percent=0, progress_message="", result=None, finished_at=None
    )
    events_redis().delete(*[stream_key(task_id) for task_id in task_ids])


def _publish(task_ids: list[str]) -> float:
    """Every change, open loop at RATE a second, as a worker makes it; the seconds it took."""
    interval, started = 1 / RATE, time.perf_counter()
    due = started
    for round_number in range(PROGRESS_ROUNDS + 1):
        for task_id in task_ids:
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            due += interval
            changed_at = time.time()
            if round_number < PROGRESS_ROUNDS:
                task_progress_set(task_id=task_id, percent=25 * (round_number + 1), message=f"bench {changed_at!r}")
            else:
                task_record_update(
                    task_id=task_id, state="SUCCESS", result={"bench_at": changed_at}, finished_at=timezone.now()
                )
    return time.perf_counter() - started


def _redis_connections(pid: int) -> int:
    """Open TCP connections of process `pid` to the broker's Redis."""
    port = urlsplit(settings.CELERY_BROKER_URL).port or 6379
    return sum(
        1
        for conn in psutil.Process(pid).net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    )


class Clients:
    """bench/sse_clients.py in its own process; `ready()` once every client listens, `result()` at the end."""

    def __init__(self, mode: str, task_ids: list[str], **options: Any) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as tasks:
            json.dump(task_ids, tasks)
        command = [PYTHON, str(BASE_DIR / "bench" / "sse_clients.py"), "--mode", mode, "--tasks", tasks.name]
        for name, value in options.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        self.tasks_file = tasks.name
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=dict(os.environ))

    def ready(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the clients exited with {self.process.wait()} before listening")
        ready = json.loads(line)
        if ready["ready"] != CLIENTS:
            self.process.kill()
            raise RuntimeError(f"only {ready['ready']} of {CLIENTS} streams opened: {ready['failures']}")
        return ready

    def result(self) -> dict[str, Any]:
        outcome = json.loads(self.process.stdout.readline())
        self.process.wait(timeout=60)
        os.unlink(self.tasks_file)
        return outcome


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def _warm(port: int, key: str, done_id: str) -> None:
    """One stream of a finished task and one API read: code loaded, connections made, before RSS is read."""
    for path in (f"/api/v1/tasks/{done_id}/events/", f"/api/v1/tasks/{done_id}/"):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", path, headers={"X-API-Key": key})
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status != 200:
            raise RuntimeError(f"warm-up GET {path} answered {response.status}")


def _project(task_ids: list[str], done_id: str, key: str) -> dict[str, Any]:
    server = WebServer(env=child_env(API_USER_THROTTLE_RATE="100000000/min"))
    try:
        _warm(server.port, key, done_id)
        time.sleep(1)
        figures: dict[str, Any] = {"rss_idle": server.rss_kib(), "redis_idle": _redis_connections(server.pid)}
        figures["fds_idle"] = psutil.Process(server.pid).num_fds()
        clients = Clients("http", task_ids, port=server.port, key=key)
        figures["open_seconds"] = clients.ready()["open_seconds"]
        time.sleep(1)
        figures["rss_open"] = server.rss_kib()
        figures["redis_open"] = _redis_connections(server.pid)
        figures["fds_open"] = psutil.Process(server.pid).num_fds()
        cpu = psutil.Process(server.pid).cpu_times()
        figures["publish_seconds"] = _publish(task_ids)
        figures["outcome"] = clients.result()
        after = psutil.Process(server.pid).cpu_times()
        figures["cpu_seconds"] = after.user + after.system - cpu.user - cpu.system
        server.check_alive()
        figures["rss_after"] = server.rss_kib()
        return figures
    finally:
        server.stop()


def _baseline(task_ids: list[str]) -> dict[str, Any]:
    clients = Clients("redis", task_ids, redis_url=settings.CELERY_BROKER_URL)
    clients.ready()
    redis_connections = _redis_connections(clients.process.pid)
    publish_seconds = _publish(task_ids)
    return {"outcome": clients.result(), "redis_open": redis_connections, "publish_seconds": publish_seconds}


def _summary(figures: dict[str, Any]) -> dict[str, Any]:
    """One run's figures, the clients' delays reduced to percentiles."""
    outcome = figures.pop("outcome")
    delays = outcome["delays_ms"] + outcome["final_delays_ms"]
    return {
        **figures,
        "p50": _percentile(delays, 0.50),
        "p99": _percentile(delays, 0.99),
        "final_p99": _percentile(outcome["final_delays_ms"], 0.99),
        **{name: outcome[name] for name in ("events", "finals", "duplicates", "failures", "unfinished")},
    }


def run() -> None:
    """The project's streams and the bare subscribers, alternating RUNS times, on the same records and schedule."""
    tier = bench_tier("b-streams", max_in_flight=1_000_000)
    (user,) = bench_users("b-streams", 1, tier, with_keys=True)
    task_ids, done_id = _records(user)
    projects, baselines = [], []
    try:
        for _ in range(RUNS):
            _records_restart(task_ids)
            projects.append(_summary(_project(task_ids, done_id, user.api_key)))
            _records_restart(task_ids)
            baselines.append(_summary(_baseline(task_ids)))
    finally:
        records_delete([*task_ids, done_id])
    project = {name: median_of([run[name] for run in projects]) for name in projects[0] if name != "failures"}
    baseline = {name: median_of([run[name] for run in baselines]) for name in baselines[0] if name != "failures"}
    expected = CLIENTS * (PROGRESS_ROUNDS + 1)
    delivered = min(run["events"] for run in projects)
    all_final = all(run["finals"] == CLIENTS for run in projects)
    per_run = ", ".join(f"{run['p99']:.0f}" for run in projects)
    per_run_baseline = ", ".join(f"{run['p99']:.0f}" for run in baselines)
    report(
        "streams",
        [
            {"figure": f"{CLIENTS} streams, {RATE:g} changes/s: p50 delay, change -> event (median of {RUNS} runs)",
             "unit": " ms", "project": project["p50"], "baseline": baseline["p50"],
             "ratio": project["p50"] / baseline["p50"]},
            {"figure": f"  p99 delay (runs: {per_run}; baseline {per_run_baseline})",
             "unit": " ms", "project": project["p99"], "baseline": baseline["p99"],
             "ratio": project["p99"] / baseline["p99"], "target": "< 200 ms", "ok": project["p99"] < 200},
            {"figure": "  final state p99 delay", "unit": " ms", "project": project["final_p99"],
             "baseline": baseline["final_p99"], "ratio": project["final_p99"] / baseline["final_p99"]},
            {"figure": f"events delivered, fewest of {RUNS} runs (expected {expected}; baseline "
             f"{min(run['events'] for run in baselines)})", "unit": "", "project": delivered,
             "target": f"= {expected}", "ok": delivered == expected and all_final},
            {"figure": "  changes seen twice (allowed, counted once)", "unit": "",
             "project": max(run["duplicates"] for run in projects)},
            {"figure": "web process RSS idle", "unit": " MiB", "project": project["rss_idle"] / 1024},
            {"figure": f"web process RSS with {CLIENTS} streams open", "unit": " MiB",
             "project": project["rss_open"] / 1024},
            {"figure": "  RSS per open stream", "unit": " KiB",
             "project": (project["rss_open"] - project["rss_idle"]) / CLIENTS},
            {"figure": "  RSS after the streams ended", "unit": " MiB", "project": project["rss_after"] / 1024},
            {"figure": f"web process Redis connections, {CLIENTS} open / idle", "unit": "",
             "project": project["redis_open"], "baseline": project["redis_idle"],
             "ratio": project["redis_open"] / max(1, project["redis_idle"])},
            {"figure": f"web process open files, {CLIENTS} open / idle (per stream "
             f"{(project['fds_open'] - project['fds_idle']) / CLIENTS:.2f})", "unit": "",
             "project": project["fds_open"], "baseline": project["fds_idle"],
             "ratio": project["fds_open"] / project["fds_idle"]},
            {"figure": f"  baseline subscribers' Redis connections ({CLIENTS} open)", "unit": "",
             "project": baseline["redis_open"]},
            {"figure": "web process CPU seconds while the changes were delivered", "unit": " s",
             "project": project["cpu_seconds"]},
            {"figure": f"seconds to open {CLIENTS} streams", "unit": " s", "project": project["open_seconds"]},
            {"figure": "seconds to publish (project runs / baseline runs)", "unit": " s",
             "project": project["publish_seconds"], "baseline": baseline["publish_seconds"],
             "ratio": project["publish_seconds"] / baseline["publish_seconds"]},
        ],
    )  # fmt: skip
    (RESULTS_DIR / f"streams-runs-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps({"project": projects, "baseline": baselines}, indent=2)
    )
