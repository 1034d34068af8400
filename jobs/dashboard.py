"""The operators' dashboard: its numbers, each read with an indexed query, never a full scan.

Task rates, durations and failures read finished records through the `(state, finished_at)`
index, over a bounded window (rates: only the minutes not counted yet, see `task_rates`;
durations and failures: the last hour); "right now" counts read the few unfinished records
through `(state, updated_at)`; queues come from the broker, workers from their own heartbeat
lines (`jobs/heartbeat.py`), beat from its last tick. Domain apps add panels of their own
(`dashboard_panel_register`, e.g. usage by tier) without jobs importing them.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, F, Max, Min, OuterRef, Window
from django.db.models.functions import Left, RowNumber
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from jobs import queues
from jobs.beat import beat_last_tick
from jobs.heartbeat import workers_online
from jobs.models import TaskRecord
from jobs.selectors import queue_lengths
from jobs.services import task_retry_possible

State = TaskRecord.State
FINAL = [State.SUCCESS, State.FAILURE, State.REVOKED]
RUNNING = [State.STARTED, State.PROGRESS, State.RETRY]
UNFINISHED = [State.WAITING, State.QUEUED, *RUNNING]
RATE_HOURS = 24
RECENT_HOURS = 1
FAILURE_GROUPS = 20
FAILURES_SHOWN_PER_GROUP = 5
SLOWEST_SHOWN = 10
RATES_CACHE_KEY = "jobs:dashboard:rates-per-minute"
RATES_RECOUNT_MINUTES = 2
ERROR_GROUP_CHARS = 300

# name -> function returning {"title", "columns": [...], "rows": [[...], ...]}; added by apps.
PANELS: dict[str, Callable[[], dict[str, Any]]] = {}


def dashboard_panel_register(name: str, function: Callable[[], dict[str, Any]]) -> None:
    """Add a table to the dashboard (a domain app's numbers, e.g. usage by tier)."""
    PANELS[name] = function


def waiting_by_owner(*, limit: int = 10) -> dict[str, Any]:
    """The owners with the most work held back (fair share), and how much of theirs runs now.

    Reads only unfinished records: waiting ones through the fair-share waiting index, running
    ones through `(state, updated_at)`.
    """
    waiting = list(
        TaskRecord.objects.filter(state=State.WAITING, fair_share=True, owner__isnull=False)
        .values("owner_id", "owner__username")
        .annotate(waiting=Count("*"), oldest=Min("created_at"))
        .order_by("-waiting")[:limit]
    )
    running = dict(
        TaskRecord.objects.filter(state__in=[State.QUEUED, *RUNNING], owner_id__in=[row["owner_id"] for row in waiting])
        .values("owner_id")
        .annotate(running=Count("*"))
        .order_by()
        .values_list("owner_id", "running")
    )
    now = timezone.now()
    return {
        "title": "Waiting work per user (fair share), most first",
        "columns": ["User", "Waiting", "Sent or running", "Oldest waiting for"],
        "rows": [
            [
                row["owner__username"],
                row["waiting"],
                running.get(row["owner_id"], 0),
                f"{int((now - row['oldest']).total_seconds())} s",
            ]
            for row in waiting
        ],
    }


dashboard_panel_register("waiting-by-owner", waiting_by_owner)


def task_rates(*, hours: int = RATE_HOURS) -> dict[str, Any]:
    """Tasks finished per minute over the last `hours`, by final state, oldest minute first.

    A minute that has passed does not change, so the counts are kept in the cache and each call
    counts only the minutes since the previous one (plus RATES_RECOUNT_MINUTES before them, for
    records committed a little after their finished_at): the first call reads the whole window
    through the index, every refresh after it a few minutes' worth.
    """
    minutes = hours * 60
    end_minute = int(timezone.now().timestamp() // 60) + 1  # exclusive: the current minute is included
    start_minute = end_minute - minutes
    kept = cache.get(RATES_CACHE_KEY) or {}
    counts: dict[int, dict[str, int]] = {m: c for m, c in kept.get("counts", {}).items() if m >= start_minute}
    recount_from = max(start_minute, kept.get("until", start_minute) - 1 - RATES_RECOUNT_MINUTES)
    for minute in range(recount_from, end_minute):
        counts.pop(minute, None)
    for state, minute, count in _finished_per_minute(recount_from, end_minute):
        counts.setdefault(minute, {})[state] = count
    cache.set(RATES_CACHE_KEY, {"until": end_minute, "counts": counts}, timeout=(hours + 1) * 3600)
    series = {state: [counts.get(start_minute + i, {}).get(state, 0) for i in range(minutes)] for state in FINAL}
    return {
        "start": start_minute * 60_000,
        "minutes": minutes,
        "series": series,
        "totals": {state: sum(values) for state, values in series.items()},
    }


def _finished_per_minute(from_minute: int, to_minute: int) -> list[tuple[str, int, int]]:
    """(state, epoch minute, count) of records finished in [from_minute, to_minute)."""
    start = datetime.fromtimestamp(from_minute * 60, tz=UTC)
    end = datetime.fromtimestamp(to_minute * 60, tz=UTC)
    with connection.cursor() as cursor:
        # An index-only range scan per final state over (state, finished_at).
        cursor.execute(
            """
            SELECT state, floor(extract(epoch FROM finished_at) / 60)::bigint AS minute, count(*)
              FROM jobs_taskrecord
             WHERE state = ANY(%s) AND finished_at >= %s AND finished_at < %s
             GROUP BY 1, 2
            """,
            [list(FINAL), start, end],
        )
        return cursor.fetchall()


def task_counts_now() -> dict[str, int]:
    """How many records wait, sit in the broker, run or wait for a retry, now."""
    counts = dict.fromkeys(UNFINISHED, 0)
    rows = TaskRecord.objects.filter(state__in=UNFINISHED).values_list("state").annotate(n=Count("*")).order_by()
    counts.update(dict(rows))
    return counts


def task_durations(*, hours: int = RECENT_HOURS) -> list[dict[str, Any]]:
    """Run time p50 / p95 (seconds) per task name, over the tasks that finished in the last `hours`."""
    since = timezone.now() - timedelta(hours=hours)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT name, count(*),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
              FROM jobs_taskrecord
             WHERE state = ANY(%s) AND finished_at >= %s AND started_at IS NOT NULL
             GROUP BY name ORDER BY name
            """,
            [list(FINAL), since],
        )
        return [
            {"name": name, "count": count, "p50": round(p50, 3), "p95": round(p95, 3)}
            for name, count, p50, p95 in cursor.fetchall()
        ]


def tasks_slowest_running(*, limit: int = SLOWEST_SHOWN) -> list[dict[str, Any]]:
    """The running tasks that started longest ago."""
    now = timezone.now()
    records = (
        TaskRecord.objects.filter(state__in=RUNNING, started_at__isnull=False)
        .select_related("owner")
        .order_by("started_at")[:limit]
    )
    return [
        {
            **_record_links(record),
            "name": record.name,
            "state": record.state,
            "owner": record.owner.get_username() if record.owner else "",
            "worker": record.worker,
            "queue": record.queue,
            "running_seconds": round((now - record.started_at).total_seconds(), 1),
            "progress_percent": record.progress_percent,
            "progress_message": record.progress_message,
        }
        for record in records
    ]


def task_failures(*, hours: int = RECENT_HOURS) -> list[dict[str, Any]]:
    """Failures of the last `hours` grouped by task name and error, most frequent first, with
    the latest few of each group (linked to what they acted on, retryable unless retried)."""
    since = timezone.now() - timedelta(hours=hours)
    failed = TaskRecord.objects.filter(state=State.FAILURE, finished_at__gte=since)
    groups = list(
        failed.annotate(error_text=Left("error", ERROR_GROUP_CHARS))
        .values("name", "error_text")
        .annotate(count=Count("*"), last=Max("finished_at"))
        .order_by("-count", "-last")[:FAILURE_GROUPS]
    )
    shown = list(
        failed.annotate(
            error_text=Left("error", ERROR_GROUP_CHARS),
            rank=Window(
                RowNumber(),
                partition_by=[F("name"), Left("error", ERROR_GROUP_CHARS)],
                order_by=F("finished_at").desc(),
            ),
        )
        .filter(rank__lte=FAILURES_SHOWN_PER_GROUP)
        .order_by("-finished_at")
    )
    newer = TaskRecord.objects.filter(
        target_type=OuterRef("target_type"), target_id=OuterRef("target_id"), created_at__gt=OuterRef("created_at")
    )
    # Only records that act on a row can have been retried (records without one share the empty
    # target, so looking for a newer one of theirs would walk most of the table).
    retried = dict(
        TaskRecord.objects.filter(pk__in=[record.pk for record in shown if record.target_type and record.target_id])
        .annotate(retried=Exists(newer))
        .values_list("pk", "retried")
    )
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in shown:
        by_group.setdefault((record.name, record.error_text), []).append(
            {
                **_record_links(record),
                "finished_at": record.finished_at,
                "retried": retried.get(record.pk, False),
                "retryable": not retried.get(record.pk, False) and task_retry_possible(record),
            }
        )
    return [{**group, "records": by_group.get((group["name"], group["error_text"]), [])} for group in groups]


def _record_links(record: TaskRecord) -> dict[str, Any]:
    """The record's id and admin page, and the admin page of the row it acted on, if any."""
    target_url = ""
    if record.target_type and record.target_id:
        app_label, _, model = record.target_type.partition(".")
        try:
            target_url = reverse(f"admin:{app_label}_{model}_change", args=[record.target_id])
        except NoReverseMatch:
            target_url = ""
    return {
        "task_id": str(record.id),
        "record_url": reverse("admin:jobs_taskrecord_change", args=[record.id]),
        "target": f"{record.target_type.rpartition('.')[2]} #{record.target_id}" if record.target_id else "",
        "target_url": target_url,
    }


def machinery_status() -> dict[str, Any]:
    """Workers online, queues in the broker, beat's last tick, and what an operator must fix."""
    workers = workers_online()
    lengths = queue_lengths()
    consumed = {queue for worker in workers for queue in worker["queues"]}
    last_tick = beat_last_tick()
    beat_age = time.time() - last_tick if last_tick else None
    # Beat stamps a tick at least every BEAT_LOCK_SECONDS / 3, and a standby takes over within
    # BEAT_LOCK_SECONDS; two lock periods without a tick mean no beat is sending.
    beat_late_after = 2 * settings.BEAT_LOCK_SECONDS
    alerts = []
    unconsumed = [queue for queue in queues.ALL_QUEUES if queue not in consumed]
    if unconsumed:
        alerts.append(f"No worker consumes {', '.join(unconsumed)}: work sent there waits.")
    if beat_age is None or beat_age > beat_late_after:
        when = "never" if beat_age is None else f"{int(beat_age)} s ago"
        alerts.append(f"Beat has not ticked for two periods (last tick: {when}): periodic jobs are not sent.")
    if any(length is None for length in lengths.values()):
        alerts.append("The broker does not answer: queue lengths are unknown.")
    return {
        "workers": workers,
        "queues": [{"name": name, "length": length, "consumed": name in consumed} for name, length in lengths.items()],
        "beat": {"last_tick": last_tick, "age_seconds": beat_age, "late_after_seconds": beat_late_after},
        "alerts": alerts,
    }


def dashboard_data() -> dict[str, Any]:
    """Everything the dashboard shows, in one dict (JSON-ready apart from datetimes)."""
    return {
        "generated_at": timezone.now(),
        "rates": task_rates(),
        "now": task_counts_now(),
        "durations": task_durations(),
        "slowest": tasks_slowest_running(),
        "failures": task_failures(),
        **machinery_status(),
        "panels": [{"name": name, **function()} for name, function in PANELS.items()],
    }
