"""Issue 9 items 2 and 7: prompts from the service to COMPLETED through a real worker, against a no-op task.

Both workers are `celery worker -P threads -c 32` processes on the same broker, as in the
Procfile. Each round first queues its work with the worker's consumer paused (prompts through
`prompt_request_create`, which records and sends them; no-ops sent by name), then resumes the
consumer and times from the first message taken to the last prompt COMPLETED (the last no-op
acknowledged). Rounds of
the project and of the baseline alternate. The project's worker lives through every round, so
its memory is read after each: growth per 1,000 tasks after the first round (warm-up).
"""

import os
import time

from django.conf import settings

from bench import noop_app
from bench.common import median_of, report
from bench.data import (
    bare_round,
    bench_tier,
    bench_users,
    consumption_started,
    last_request_id,
    prompts_clean,
    queue_purge,
    round_wait,
)
from bench.processes import Worker, child_env
from config.celery import app as celery_app
from jobs import queues
from prompts.services import prompt_request_create

PROMPTS = int(os.environ.get("BENCH_PROMPTS", "10000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))
CONCURRENCY = settings.PROMPT_WORKER_CONCURRENCY
QUEUE = queues.PROMPTS_NORMAL
USERS = 8


def _project_round(worker: Worker, users: list, size: int) -> tuple[float, float]:
    """(accepted per second through the service, completed per second once the worker runs)."""
    worker.pause(QUEUE)
    since = last_request_id()
    started = time.perf_counter()
    for number in range(size):
        prompt_request_create(user=users[number % len(users)], prompt_text=f"benchmark prompt {number}")
    accepted = size / (time.perf_counter() - started)
    worker.resume(QUEUE)
    started = consumption_started(QUEUE, waiting=size)
    last = round_wait(owners=users, since_id=since, count=size, timeout=size / 5 + 60)
    return accepted, size / (last.timestamp() - started)


def run() -> None:
    tier = bench_tier("b-e2e", max_in_flight=1_000_000)  # fair share on, but no cap that binds
    users = bench_users("b-e2e", USERS, tier)
    prompts_clean(users)
    noop_app.app.conf.broker_url = settings.CELERY_BROKER_URL
    size = PROMPTS // ROUNDS
    project = Worker(app=celery_app, queues=(QUEUE,), concurrency=CONCURRENCY, env=child_env(), name="e2e-project")
    baseline = Worker(
        app=noop_app.app,
        app_module="bench.noop_app",
        queues=(noop_app.NOOP_QUEUE,),
        concurrency=CONCURRENCY,
        env=child_env(BENCH_BROKER_URL=settings.CELERY_BROKER_URL),
        name="e2e-noop",
    )
    accepted, rates, noop_rates, rss = [], [], [], []
    try:
        for _ in range(ROUNDS):
            accept_rate, rate = _project_round(project, users, size)
            accepted.append(accept_rate)
            rates.append(rate)
            rss.append(project.rss_kib())
            noop_rates.append(bare_round(baseline, size=size, task=noop_app.NOOP_TASK))
            prompts_clean(users)  # keeps the tables as small as at the start
    finally:
        project.stop()
        baseline.stop()
        prompts_clean(users)
        queue_purge(QUEUE, noop_app.NOOP_QUEUE)
    ratio = median_of(rates) / median_of(noop_rates)
    growth = (rss[-1] - rss[0]) / 1024 / (size * (ROUNDS - 1) / 1000) if ROUNDS > 1 else 0.0
    report(
        "end_to_end",
        [
            {
                "figure": f"prompts to COMPLETED, offline provider, {ROUNDS} rounds of {size:,} "
                f"(threads pool, {CONCURRENCY}), vs a no-op task",
                "unit": " tasks/s",
                "project": median_of(rates),
                "baseline": median_of(noop_rates),
                "ratio": ratio,
                "target": ">= 0.40",
                "ok": ratio >= 0.40,
            },
            {
                "figure": "prompts accepted through the service in-process (while the worker is paused)",
                "unit": " /s",
                "project": median_of(accepted),
            },
            {
                "figure": f"worker RSS growth per 1,000 tasks after {size * ROUNDS:,} tasks "
                f"(RSS {rss[0] / 1024:.0f} MiB after the first round, {rss[-1] / 1024:.0f} MiB at the end)",
                "unit": " MiB",
                "project": growth,
                "target": "< 1 MiB",
                "ok": growth < 1.0,
            },
        ],
    )
