"""The floor for task rates: a bare Celery app with a no-op task (and a sleeping one), on the project's broker.

Same broker, same delivery settings (late acks, prefetch 1, the Redis transport options) and
the same pool as the project's prompt worker; no Django, no result backend, no events, no
task record. Run as `celery -A bench.noop_app worker -P threads ...` with BENCH_BROKER_URL set.
"""

import os
import time

from celery import Celery

NOOP_TASK = "bench.noop"
SLEEP_TASK = "bench.sleep"
NOOP_QUEUE = "bench.noop"

app = Celery("bench_noop", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_transport_options={"visibility_timeout": 3600, "socket_connect_timeout": 3, "socket_timeout": 10},
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    accept_content=["json"],
)


@app.task(name=NOOP_TASK)
def noop() -> None:
    """Nothing: what remains is Celery's own cost per task."""


@app.task(name=SLEEP_TASK)
def sleep(seconds: float) -> None:
    """Wait like a provider call does, and nothing else."""
    time.sleep(seconds)
