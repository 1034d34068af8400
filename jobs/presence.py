"""Which workers are online, as the workers themselves say it: one Redis hash, no broadcast.

Celery's inspect broadcasts a question and waits its whole timeout for answers, too slow for a
page that refreshes every few seconds. Instead each worker writes its own line (queues, pool,
concurrency, running tasks, load) into `jobs:workers` at every heartbeat (every 2 s, Celery's
`heartbeat_sent` signal), and readers take the lines written within PRESENCE_FRESH_SECONDS.
"""

import contextlib
import json
import logging
import os
import time
from typing import Any

from celery import signals

from jobs.events import events_redis

logger = logging.getLogger(__name__)

PRESENCE_KEY = "jobs:workers"
PRESENCE_FRESH_SECONDS = 10  # five missed heartbeats
_consumer: Any = None


def _line(consumer: Any) -> dict[str, Any]:
    from celery.worker import state

    pool = getattr(consumer, "pool", None)
    controller = getattr(consumer, "controller", None)
    return {
        "name": consumer.hostname,
        "queues": sorted(q.name for q in getattr(consumer.task_consumer, "queues", []) or []),
        "pool": type(pool).__module__.rsplit(".", 1)[-1] if pool is not None else "",
        "concurrency": getattr(controller, "concurrency", None) or getattr(pool, "limit", None),
        "active": len(state.active_requests),
        "reserved": len(state.reserved_requests),
        "processed": sum(state.total_count.values()),
        "load": [round(x, 2) for x in os.getloadavg()],
        "pid": os.getpid(),
        "seen": time.time(),
    }


def worker_presence_publish() -> None:
    """Write this worker's line; never lets a Redis hiccup disturb the worker."""
    if _consumer is None or getattr(_consumer, "task_consumer", None) is None:
        return
    try:
        line = _line(_consumer)
        events_redis().hset(PRESENCE_KEY, line["name"], json.dumps(line))
    except Exception as exc:
        logger.debug("worker presence not published: %s", exc)


@signals.worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    global _consumer
    _consumer = sender
    worker_presence_publish()


@signals.heartbeat_sent.connect
def _on_heartbeat(**_: Any) -> None:
    worker_presence_publish()


@signals.worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    if _consumer is not None:
        with contextlib.suppress(Exception):
            events_redis().hdel(PRESENCE_KEY, _consumer.hostname)


def workers_online() -> list[dict[str, Any]]:
    """The workers heard from within PRESENCE_FRESH_SECONDS, by name; lines of dead ones are dropped."""
    try:
        client = events_redis()
        lines = [json.loads(value) for value in client.hgetall(PRESENCE_KEY).values()]
    except Exception:
        return []
    now = time.time()
    stale = [line["name"] for line in lines if now - line.get("seen", 0) > 6 * PRESENCE_FRESH_SECONDS]
    if stale:
        client.hdel(PRESENCE_KEY, *stale)
    return sorted(
        (line for line in lines if now - line.get("seen", 0) <= PRESENCE_FRESH_SECONDS), key=lambda w: w["name"]
    )
