"""Worker heartbeats: each worker process keeps a short-lived key in Redis while it is alive.

The sweeper sends again the records that a worker without a heartbeat had started (it was
killed, or lost its host), within seconds instead of the broker's visibility timeout.
"""

import contextlib
import logging
import threading
from typing import Any

from celery import signals
from django.conf import settings

from jobs.events import events_redis

logger = logging.getLogger(__name__)
KEY_PREFIX = "jobs:worker:"
_stop = threading.Event()


def heartbeat_key(hostname: str) -> str:
    return f"{KEY_PREFIX}{hostname}"


def worker_alive(hostname: str) -> bool:
    """True if the worker beat within the last few intervals (unknown workers count as alive)."""
    if not hostname:
        return True
    try:
        return bool(events_redis().exists(heartbeat_key(hostname)))
    except Exception:  # Redis down: assume alive rather than resend everything
        return True


def _beat(hostname: str) -> None:
    interval = settings.JOBS_WORKER_HEARTBEAT_SECONDS
    while not _stop.is_set():
        try:
            events_redis().set(heartbeat_key(hostname), "1", ex=max(1, int(interval * 3)))
        except Exception as exc:
            logger.warning("heartbeat not written: %s", exc)
        _stop.wait(interval)


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", "") or ""
    if hostname:
        threading.Thread(target=_beat, args=(hostname,), name="jobs-heartbeat", daemon=True).start()


@signals.worker_shutdown.connect
def _stop_heartbeat(sender: Any = None, **_: Any) -> None:
    _stop.set()
    hostname = getattr(sender, "hostname", "") or ""
    if hostname:
        with contextlib.suppress(Exception):  # the key expires by itself anyway
            events_redis().delete(heartbeat_key(hostname))
