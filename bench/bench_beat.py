"""Issue 9 item 6: beat with 1,000 periodic tasks in the database: tick time, and each due task sent once.

In-process: `jobs.beat.LockedDatabaseScheduler` against django-celery-beat's stock
`DatabaseScheduler` (what the project adds is the Redis lock), alternating, five runs: the time
per tick when all 1,000 are due (one tick sends one task), and per tick when none is due.

Real processes: two `celery beat` processes with the project's scheduler and `--max-interval=1`
run at once over 1,000 tasks due every second, then one stock beat alone (twice each,
alternating); once all beats are up, "Sending due task" lines are counted per task for a few
seconds, up to the moment the beats are stopped. Each task should go out once a second, by one
beat only: a send of a task less than half a second after its previous one is a duplicate.
Two stock beats together show that the count does catch duplicates. The project's own periodic
jobs are disabled meanwhile and restored afterwards; sent messages go to a queue nobody reads.
"""

import itertools
import json
import os
import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_beat.schedulers import DatabaseScheduler

from bench.common import median_of, report
from bench.data import queue_purge
from bench.processes import PYTHON, Child, child_env, log_dir, wait_until
from config.celery import app as celery_app
from jobs.beat import LockedDatabaseScheduler

TASKS = int(os.environ.get("BENCH_BEAT_TASKS", "1000"))
SECONDS = float(os.environ.get("BENCH_BEAT_SECONDS", "10"))
TICK_RUNS = int(os.environ.get("BENCH_BEAT_TICK_RUNS", "5"))
BEAT_RUNS = 2
PREFIX = "b-beat-"
QUEUE = "bench.beat"
TASK = "bench.beat_noop"
# Children log JSON lines (LOG_FORMAT's default without DEBUG): {"message": ..., "time": ISO 8601}.
SENDING = re.compile(r"^Scheduler: Sending due task (\S+)")


def _tasks_create(every_seconds: int) -> None:
    """TASKS periodic tasks every `every_seconds`, last run just now (none due yet)."""
    PeriodicTask.objects.filter(name__startswith=PREFIX).delete()
    interval, _ = IntervalSchedule.objects.get_or_create(every=every_seconds, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.bulk_create(
        PeriodicTask(
            name=f"{PREFIX}{n:04d}", task=TASK, queue=QUEUE, interval=interval, last_run_at=timezone.now(), kwargs="{}"
        )
        for n in range(TASKS)
    )
    PeriodicTasks.update_changed()


def _scheduler(kind: type) -> DatabaseScheduler:
    return kind(app=celery_app, lazy=False)


def _discard(scheduler: DatabaseScheduler) -> None:
    scheduler._dirty.clear()  # no need to write 1,000 last-run times back
    scheduler.close()


def _due_tick(kind: type) -> float:
    """Seconds per tick while all TASKS are due (each such tick sends one)."""
    PeriodicTask.objects.filter(name__startswith=PREFIX).update(last_run_at=timezone.now() - timedelta(seconds=30))
    PeriodicTasks.update_changed()
    scheduler = _scheduler(kind)
    sent = 0
    apply_entry = scheduler.apply_entry

    def counting(entry: object, producer: object = None) -> None:
        nonlocal sent
        sent += 1
        apply_entry(entry, producer=producer)

    scheduler.apply_entry = counting
    scheduler.tick()  # the first tick builds the heap
    started = time.perf_counter()
    ticks = 0
    while sent < TASKS:
        scheduler.tick()
        ticks += 1
    elapsed = time.perf_counter() - started
    _discard(scheduler)
    return elapsed / ticks


def _idle_tick(kind: type, calls: int = 200) -> float:
    """Seconds per tick when nothing is due."""
    PeriodicTask.objects.filter(name__startswith=PREFIX).update(last_run_at=timezone.now())
    PeriodicTasks.update_changed()
    scheduler = _scheduler(kind)
    scheduler.tick()
    started = time.perf_counter()
    for _ in range(calls):
        scheduler.tick()
    elapsed = time.perf_counter() - started
    _discard(scheduler)
    return elapsed / calls


def _beats(scheduler_path: str, count: int, name: str) -> dict:
    """Run `count` beats at once; every task's send times over SECONDS once all of them are up."""
    PeriodicTask.objects.filter(name__startswith=PREFIX).update(last_run_at=timezone.now())
    PeriodicTasks.update_changed()
    beats = []
    for number in range(count):
        pidfile = log_dir() / f"{name}-{number}.pid"
        pidfile.unlink(missing_ok=True)
        command = [PYTHON, "-m", "celery", "-A", "config", "beat", "-S", scheduler_path, "--max-interval=1"]
        command += ["--loglevel=INFO", f"--pidfile={pidfile}"]
        beats.append(Child(command, env=child_env(LOG_LEVEL="INFO"), log_name=f"{name}-{number}.log"))
    try:
        # Up means: every beat has started its service, and one of them has sent a task already.
        wait_until(lambda: _all_up(beats), timeout=180, interval=0.2, what=f"{count} beats to start")
        started_at = datetime.now(UTC)
        time.sleep(SECONDS)
        for beat in beats:
            beat.check_alive()
    finally:
        # Counted while all run: a beat that stops hands the lock over, and the other may then send.
        stopped_at = datetime.now(UTC)
        for beat in beats:
            beat.process.terminate()
        for beat in beats:
            beat.stop()
    sends: dict[str, list[datetime]] = defaultdict(list)
    senders = 0
    for beat in beats:
        found = [
            (when, task) for when, task in _sends(beat) if task.startswith(PREFIX) and started_at <= when < stopped_at
        ]
        senders += bool(found)
        for when, task in found:
            sends[task].append(when)
    return {"sends": sends, "senders": senders, "seconds": (stopped_at - started_at).total_seconds()}


def _sends(beat: Child) -> list[tuple[datetime, str]]:
    sends = []
    for line in beat.log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # the banner, or a line cut short while being written
            continue
        if isinstance(entry, dict) and (match := SENDING.match(str(entry.get("message", "")))):
            sends.append((datetime.fromisoformat(entry["time"]), match[1]))
    return sends


def _all_up(beats: list[Child]) -> bool:
    for beat in beats:
        beat.check_alive()
    started = all("beat: Starting..." in beat.log_path.read_text(errors="replace") for beat in beats)
    return started and any(_sends(beat) for beat in beats)


def _send_figures(outcome: dict) -> tuple[float, int]:
    """(sends per task per second over the window, duplicates: sends < 0.5 s after the previous)."""
    sends = outcome["sends"]
    duplicates = 0
    for times in sends.values():
        times.sort()
        duplicates += sum((b - a).total_seconds() < 0.5 for a, b in itertools.pairwise(times))
    total = sum(len(times) for times in sends.values())
    return total / TASKS / outcome["seconds"], duplicates


def run() -> None:
    enabled = PeriodicTask.objects.exclude(name__startswith=PREFIX).filter(enabled=True)
    others = list(enabled.values_list("pk", flat=True))
    PeriodicTask.objects.filter(pk__in=others).update(enabled=False)
    try:
        _tasks_create(every_seconds=1)
        due, due_stock, idle, idle_stock = [], [], [], []
        for run in range(TICK_RUNS):  # alternating, and which goes first too
            for kind in (LockedDatabaseScheduler, DatabaseScheduler)[:: 1 if run % 2 else -1]:
                (due if kind is LockedDatabaseScheduler else due_stock).append(_due_tick(kind))
                (idle if kind is LockedDatabaseScheduler else idle_stock).append(_idle_tick(kind))
            queue_purge(QUEUE)
        locked, stock = [], []
        for _ in range(BEAT_RUNS):
            locked.append(_beats("jobs.beat:LockedDatabaseScheduler", 2, "beat-locked"))
            stock.append(_beats("django_celery_beat.schedulers:DatabaseScheduler", 1, "beat-stock"))
        stock_twice = _beats("django_celery_beat.schedulers:DatabaseScheduler", 2, "beat-stock-twice")
    finally:
        PeriodicTask.objects.filter(name__startswith=PREFIX).delete()
        PeriodicTask.objects.filter(pk__in=others).update(enabled=True)
        PeriodicTasks.update_changed()
        queue_purge(QUEUE)
    rate = median_of([_send_figures(outcome)[0] for outcome in locked])
    duplicates = sum(_send_figures(outcome)[1] for outcome in locked)
    senders = max(outcome["senders"] for outcome in locked)
    stock_rate = median_of([_send_figures(outcome)[0] for outcome in stock])
    _, stock_duplicates = _send_figures(stock_twice)
    due_ratio = median_of(due) / median_of(due_stock)
    report(
        "beat",
        [
            {
                "figure": f"tick with all {TASKS:,} tasks due (one send per tick), locked vs stock DatabaseScheduler",
                "unit": " ms",
                "project": median_of(due) * 1000,
                "baseline": median_of(due_stock) * 1000,
                "ratio": due_ratio,
                "target": "<= 1.2",
                "ok": due_ratio <= 1.2,
            },
            {
                "figure": f"tick with none of {TASKS:,} due",
                "unit": " ms",
                "project": median_of(idle) * 1000,
                "baseline": median_of(idle_stock) * 1000,
                "ratio": median_of(idle) / median_of(idle_stock),
            },
            {
                "figure": f"{TASKS:,} tasks due every second for {SECONDS:g} s: sends per task per second, "
                f"2 locked beats vs 1 stock beat, median of {BEAT_RUNS}",
                "unit": "",
                "project": rate,
                "baseline": stock_rate,
                "ratio": rate / stock_rate if stock_rate else 0.0,
                "target": ">= 0.9",
                "ok": bool(stock_rate) and rate / stock_rate >= 0.9,
            },
            {
                "figure": f"duplicate sends with 2 locked beats, {BEAT_RUNS} runs (at most {senders} of them sent)",
                "unit": "",
                "project": float(duplicates),
                "target": "0, one beat sending",
                "ok": duplicates == 0 and senders == 1,
            },
            {
                "figure": "duplicate sends with 2 stock beats (the check catches them)",
                "unit": "",
                "project": float(stock_duplicates),
            },
        ],
    )
