"""Reads for task records and the health of the background machinery."""

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from celery import current_app
from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from psycopg_pool import PoolTimeout

from jobs import queues
from jobs.beat import beat_last_tick
from jobs.models import TaskRecord

# How long the health check waits for one of the web's pooled connections before asking the
# database on a connection of its own (DB_POOL_TIMEOUT is for requests, and is longer).
HEALTH_POOL_WAIT_SECONDS = 1.0


def task_record_list(*, user: Any) -> QuerySet[TaskRecord]:
    """The records `user` may see: their own, or all for staff."""
    queryset = TaskRecord.objects.all()
    return queryset if user.is_staff else queryset.filter(owner=user)


def task_record_get(*, user: Any, task_id: str) -> TaskRecord | None:
    """One record by id if `user` may see it; an unknown id and another's id are both None."""
    try:
        task_uuid = uuid.UUID(str(task_id))
    except ValueError:
        return None
    return task_record_list(user=user).filter(pk=task_uuid).first()


def health_check(*, worker_timeout: float = 1.0) -> dict[str, Any]:
    """Database, broker and workers, each with `ok` and what was seen."""
    report: dict[str, Any] = {"database": database_health()}
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        report["broker"] = {"ok": True}
    except Exception as exc:
        report["broker"] = {"ok": False, "error": str(exc)}
    workers: list[str] = []
    if report["broker"]["ok"]:
        try:
            replies = current_app.control.ping(timeout=worker_timeout) or []
            workers = sorted(name for reply in replies for name in reply)
        except Exception:  # a broker hiccup between the two checks
            workers = []
    report["workers"] = {"ok": bool(workers), "seen": workers}
    last_tick = beat_last_tick()
    report["beat"] = {
        "ok": last_tick is not None and time.time() - last_tick < 3 * settings.BEAT_LOCK_SECONDS,
        "last_tick": datetime.fromtimestamp(last_tick, tz=UTC).isoformat() if last_tick else None,
    }
    return report


def database_health(*, db: Any = connection, pool_wait: float = HEALTH_POOL_WAIT_SECONDS) -> dict[str, Any]:
    """Whether the database answers, with `ok` and what was seen.

    With the web's connection pool (DB_POOL) and no connection in hand, one is borrowed for at
    most `pool_wait` seconds. If every one stays in use, the web process is busy, which says
    nothing about the database: it is asked on a connection of its own, and the answer says
    `busy` (requests meanwhile wait up to DB_POOL_TIMEOUT, then get a 503).
    """
    pool = getattr(db, "pool", None)  # Django's psycopg_pool, None without DB_POOL
    try:
        if pool is None or db.connection is not None:
            with db.cursor() as cursor:
                cursor.execute("SELECT 1")
            return {"ok": True}
        pool.open()  # as Django does before its first borrow (no-op once open)
        try:
            with pool.connection(timeout=pool_wait) as pooled:
                pooled.execute("SELECT 1")
            return {"ok": True}
        except PoolTimeout:
            with psycopg.connect(pool.conninfo, **{**pool.kwargs, "connect_timeout": 5}) as own:
                own.execute("SELECT 1")
            stats = pool.get_stats()
            busy = f"{stats.get('pool_size', '?')} pooled connections, none free for {pool_wait:g} s"
            return {"ok": True, "busy": busy}
    except Exception as exc:
        return {"ok": False, "error": str(exc)}


def _inspect() -> Any:
    return current_app.control.inspect(timeout=settings.JOBS_INSPECT_TIMEOUT_SECONDS)


def workers_active() -> dict[str, Any]:
    """Active, reserved and scheduled tasks per worker; empty where no worker answered in time."""
    inspect = _inspect()
    return {
        "active": inspect.active() or {},
        "reserved": inspect.reserved() or {},
        "scheduled": inspect.scheduled() or {},
    }


def workers_overview() -> dict[str, Any]:
    """Each worker's pool, load, counts and consumed queues, and the length of every queue."""
    inspect = _inspect()
    stats = inspect.stats() or {}
    consumed = inspect.active_queues() or {}
    workers = [
        {
            "name": name,
            "pool": info.get("pool", {}).get("implementation", ""),
            "concurrency": info.get("pool", {}).get("max-concurrency"),
            "uptime_seconds": info.get("uptime"),
            "prefetch_count": info.get("prefetch_count"),
            "tasks_done": sum((info.get("total") or {}).values()),
            "queues": sorted(q["name"] for q in consumed.get(name, [])),
        }
        for name, info in sorted(stats.items())
    ]
    return {"workers": workers, "queues": queue_lengths()}


def queue_lengths() -> dict[str, int | None]:
    """Messages waiting in each queue (the broker's priority sub-queues added up)."""
    lengths: dict[str, int | None] = {}
    try:
        with current_app.connection_for_read() as conn:
            client = conn.default_channel.client
            for queue in queues.ALL_QUEUES:
                keys = [queue] + [
                    f"{queue}{conn.default_channel.sep}{p}" for p in conn.default_channel.priority_steps[1:]
                ]
                lengths[queue] = sum(client.llen(key) for key in keys)
    except Exception:  # broker down: unknown, not zero
        lengths = dict.fromkeys(queues.ALL_QUEUES)
    return lengths
