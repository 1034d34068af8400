"""Issue 9 item 3: I/O-bound prompts, a provider that takes 1 s per call, against concurrency / latency.

The provider is the tests' local OpenAI-protocol server (tests/openai_server.py) in its own
process; every prompt carries `#delay=1`. The worker runs with `make run`'s settings for
prompts: threads pool, PROMPT_WORKER_CONCURRENCY (32) threads, the real `openai` client. Prompts
are spread over enough users of the `free` tier's cap (2 in flight each) that the caps allow
more than the worker's threads, so fair share holds nothing back that the worker could run.
Each round queues its prompts with the consumer paused, then times from the first message the
worker takes to the last prompt COMPLETED. For reference, the same number of bare Celery tasks
that only sleep 1 s run through the same pool and broker (bench/noop_app.py), alternating:
what Celery's threads pool itself reaches, before any of the project's work.
"""

import math
import os

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
    queue_length,
    queue_purge,
    round_wait,
)
from bench.processes import OpenAIServer, Worker, child_env
from config.celery import app as celery_app
from jobs import queues
from prompts.services import prompt_request_create

PROMPTS = int(os.environ.get("BENCH_IO_PROMPTS", "500"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LATENCY = 1.0
CONCURRENCY = settings.PROMPT_WORKER_CONCURRENCY
CAP = 2  # the free tier's max_in_flight
QUEUE = queues.PROMPTS_NORMAL


def run() -> None:
    users_needed = 2 * math.ceil(CONCURRENCY / CAP)  # twice the slots the worker has threads for
    tier = bench_tier("b-io", max_in_flight=CAP)
    users = bench_users("b-io", users_needed, tier)
    prompts_clean(users)
    provider = OpenAIServer()
    worker_env = child_env(
        AI_PROVIDER="openai", OPENAI_BASE_URL=provider.base_url, OPENAI_API_KEY="bench", AI_TIMEOUT_SECONDS="30"
    )
    worker = Worker(app=celery_app, queues=queues.PROMPT_QUEUES, concurrency=CONCURRENCY, env=worker_env, name="io")
    noop_app.app.conf.broker_url = settings.CELERY_BROKER_URL
    bare = Worker(
        app=noop_app.app,
        app_module="bench.noop_app",
        queues=(noop_app.NOOP_QUEUE,),
        concurrency=CONCURRENCY,
        env=child_env(BENCH_BROKER_URL=settings.CELERY_BROKER_URL),
        name="io-bare",
    )
    rates, bare_rates = [], []
    try:
        for _ in range(RUNS):
            worker.pause(QUEUE)
            since = last_request_id()
            for number in range(PROMPTS):
                text = f"#delay={LATENCY:g} question {number}"
                prompt_request_create(user=users[number % len(users)], prompt_text=text)
            worker.resume(QUEUE)
            started = consumption_started(QUEUE, waiting=queue_length(QUEUE))
            last = round_wait(owners=users, since_id=since, count=PROMPTS, timeout=PROMPTS * LATENCY + 120)
            rates.append(PROMPTS / (last.timestamp() - started))
            prompts_clean(users)
            bare_rates.append(bare_round(bare, size=PROMPTS, task=noop_app.SLEEP_TASK, args=(LATENCY,)))
    finally:
        worker.stop()
        bare.stop()
        provider.stop()
        prompts_clean(users)
        queue_purge(*queues.PROMPT_QUEUES, noop_app.NOOP_QUEUE)
    ideal = CONCURRENCY / LATENCY
    ratio = median_of(rates) / ideal
    report(
        "io",
        [
            {
                "figure": f"{PROMPTS} prompts, provider answering after {LATENCY:g} s, {CONCURRENCY} threads, "
                f"{len(users)} users x cap {CAP} = {len(users) * CAP} slots (caps do not bind), vs ideal",
                "unit": " prompts/s",
                "project": median_of(rates),
                "baseline": ideal,
                "ratio": ratio,
                "target": ">= 0.80",
                "ok": ratio >= 0.8,
            },
            {
                "figure": f"the same with bare Celery tasks that sleep {LATENCY:g} s (same pool and broker), vs ideal",
                "unit": " tasks/s",
                "project": median_of(bare_rates),
                "baseline": ideal,
                "ratio": median_of(bare_rates) / ideal,
            },
        ],
    )
