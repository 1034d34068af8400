"""Worker heartbeats: each worker writes its own line in one Redis hash while it is alive.

One record serves both readers. The sweeper asks `worker_alive(name)` and sends again, within
seconds instead of the broker's visibility timeout, the records that a worker without a
heartbeat had received or started (it was killed, or lost its host). The dashboard asks
`workers_online()` for every live worker's queues, pool, concurrency, running tasks and load:
no broadcast, no waiting for answers, unlike Celery's inspect.

A thread in each worker process (the parent, under prefork) writes the line every
JOBS_WORKER_HEARTBEAT_SECONDS, stamped with Redis's own clock so that hosts whose clocks
disagree still agree on who is alive. A worker is alive while its line is younger than
MISSED_BEATS of its own beats.
"""

import contextlib
import json
import logging
import os
import threading
from typing import Any

from celery import signals
from django.conf import settings

from jobs.events import events_redis

logger = logging.getLogger(__name__)

WORKERS_KEY = "jobs:workers"
MISSED_BEATS = 3  # a worker silent for this many of its beats is dead
FORGET_AFTER_SECONDS = 3600  # lines of workers gone this long are deleted by readers
# Stamps the line (a JSON object) with the server's time, so that every reader compares it with
# the same clock. Spliced as text: a cjson round trip would turn empty lists into objects.
_WRITE = """
local now = redis.call('TIME')
local seen = now[1] .. '.' .. string.format('%06d', tonumber(now[2]))
redis.call('HSET', KEYS[1], ARGV[1], '{"seen": ' .. seen .. ', ' .. string.sub(ARGV[2], 2))
"""
_stop = threading.Event()
_consumer: Any = None


def _line(consumer: Any) -> dict[str, Any]:
    from celery.worker import state

    pool = getattr(consumer, "pool", None)
    controller = getattr(consumer, "controller", None)
    task_consumer = getattr(consumer, "task_consumer", None)
    return {
        "name": consumer.hostname,
        "queues": sorted(q.name for q in getattr(task_consumer, "queues", []) or []),
        "pool": type(pool).__module__.rsplit(".", 1)[-1] if pool is not None else "",
        "concurrency": getattr(controller, "concurrency", None) or getattr(pool, "limit", None),
        "active": len(state.active_requests),
        "reserved": len(state.reserved_requests),
        "processed": sum(state.total_count.values()),
        "load": [round(x, 2) for x in os.getloadavg()],
        "pid": os.getpid(),
        "interval": settings.JOBS_WORKER_HEARTBEAT_SECONDS,
    }


def worker_heartbeat_write(consumer: Any) -> None:
    """Write this worker's line now; a Redis hiccup is logged, never raised into the worker."""
    try:
        line = _line(consumer)
        events_redis().eval(_WRITE, 1, WORKERS_KEY, line["name"], json.dumps(line))
    except Exception as exc:
        logger.warning("heartbeat not written: %s", exc)


def _lines() -> tuple[float, list[dict[str, Any]]]:
    """Redis's time now and every worker's line."""
    pipe = events_redis().pipeline(transaction=False)
    pipe.time()
    pipe.hgetall(WORKERS_KEY)
    (seconds, micros), raw = pipe.execute()
    return seconds + micros / 1_000_000, [json.loads(value) for value in raw.values()]


def _alive(line: dict[str, Any], now: float) -> bool:
    interval = line.get("interval") or settings.JOBS_WORKER_HEARTBEAT_SECONDS
    return now - line.get("seen", 0) <= MISSED_BEATS * interval


def worker_alive(hostname: str) -> bool:
    """True if the worker beat within its last few beats (no name, or Redis down: assumed alive)."""
    if not hostname:
        return True
    try:
        pipe = events_redis().pipeline(transaction=False)
        pipe.time()
        pipe.hget(WORKERS_KEY, hostname)
        (seconds, micros), raw = pipe.execute()
    except Exception:  # Redis down: assume alive rather than resend everything
        return True
    return raw is not None and _alive(json.loads(raw), seconds + micros / 1_000_000)


def workers_online() -> list[dict[str, Any]]:
    """The live workers' lines, by name; lines of workers gone for long are deleted."""
    try:
        now, lines = _lines()
    except Exception:
        return []
    gone = [line["name"] for line in lines if now - line.get("seen", 0) > FORGET_AFTER_SECONDS]
    if gone:
        with contextlib.suppress(Exception):
            events_redis().hdel(WORKERS_KEY, *gone)
    return sorted((line for line in lines if _alive(line, now)), key=lambda line: line["name"])


def _beat(consumer: Any) -> None:
    while not _stop.is_set():
        worker_heartbeat_write(consumer)
        _stop.wait(settings.JOBS_WORKER_HEARTBEAT_SECONDS)


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    global _consumer
    if getattr(sender, "hostname", ""):
        _consumer = sender
        threading.Thread(target=_beat, args=(sender,), name="jobs-heartbeat", daemon=True).start()


@signals.worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    _stop.set()
    if _consumer is not None:
        with contextlib.suppress(Exception):  # readers stop counting it after a few beats anyway
            events_redis().hdel(WORKERS_KEY, _consumer.hostname)
