"""The one dispatch path: record a task with the work it belongs to, send it after commit.

Every start of background work goes through `task_dispatch`. The record is written in the
caller's transaction; the message is sent only once that transaction commits, so no worker
looks for a row that is not there yet. A record whose send failed (broker down) or that went
silent is found by `task_records_sweep` and sent again, so nothing accepted is stranded.
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import DateTimeField, F, Q, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from common.db import insert_values
from common.logs import request_id_get
from jobs.events import event_publish, events_publish
from jobs.exceptions import RetryRefused
from jobs.fairshare import (
    FINISH_COLUMNS,
    FINISH_CTES,
    FINISH_JOINS,
    GO,
    READY,
    fair_enqueue_ctes,
    fair_release,
    fair_send,
    fair_turn,
    lane_finished,
    lanes_repair,
)
from jobs.heartbeat import worker_alive
from jobs.models import TaskRecord
from jobs.schedules import REGISTRY
from jobs.selectors import queue_lengths
from jobs.sending import sent_key, sent_noted, task_message_send, task_record_send
from jobs.signals import task_record_abandoned, task_record_revoked

logger = logging.getLogger(__name__)
State = TaskRecord.State


@dataclass(frozen=True)
class PreparedDispatch:
    """A task record to write inside a statement of the caller's (`task_dispatch_prepare`).

    The caller's statement is `WITH <its CTEs>, {ctes} SELECT <its columns>, {columns} FROM
    <its CTE>, {tables}` with `params` added to its own; it passes the selected `columns` to
    `task_dispatched`. The names `front`, `lane` and `dispatched` are taken.
    """

    record: TaskRecord
    ctes: str
    params: dict[str, Any]
    columns: str
    tables: str
    after: str | None


def task_dispatch_prepare(
    *,
    name: str,
    queue: str,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    owner: Any = None,
    target: models.Model | None = None,
    max_in_flight: int | None = None,
    weight: int = 1,
    task_id: uuid.UUID | None = None,
    after: str | None = None,
) -> PreparedDispatch:
    """`task_dispatch` as SQL for the caller's own statement, so that the work and its record are
    written together in one statement (no transaction, no round trips of their own).

    With `after`, the name of a CTE of the caller's that inserts `target` (unsaved) and returns
    its `id`: the record is written only if that CTE returns a row, acts on that row, and takes
    its id as the task's first argument, before `args`.
    """
    fair = bool(settings.FAIR_SHARE_ENABLED and max_in_flight and owner is not None)
    record = TaskRecord(
        id=task_id or uuid.uuid4(),
        name=name,
        queue=queue,
        args=list(args or []),
        kwargs=dict(kwargs or {}),
        owner=owner,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None and target.pk is not None else "",
        fair_share=fair,
        request_id=request_id_get(),  # travels with the message, however late it is sent
    )
    exclude = ("state", "args", "target_id") if after else ("state",)
    columns, values, params = insert_values(record, exclude=exclude, prefix="d")
    if after:  # the target's id, known only in the statement: the first argument, and the target
        columns += ", args, target_id"
        values += f", jsonb_build_array({after}.id) || %(d_args)s::jsonb, {after}.id::text"
        params["d_args"] = TaskRecord._meta.get_field("args").get_db_prep_save(record.args, connection)
    sources = [after] if after else []
    if fair:
        lane_ctes, lane_params = fair_enqueue_ctes(
            cap=max_in_flight, weight=weight, queue=queue, owner_id=record.owner_id, after=after
        )
        params.update(lane_params)
        state = "CASE WHEN lane.waiting = 0 THEN 'QUEUED' ELSE 'WAITING' END"
        ctes = f"{lane_ctes}, dispatched AS (\n"
        sources.append("lane")
        selected, tables = "dispatched.state, lane.waiting, lane.in_flight, lane.cap", "dispatched, lane"
    else:
        state, ctes = "'WAITING'", "dispatched AS (\n"
        selected, tables = "dispatched.state, 0, 0, 0", "dispatched"
    source = f" FROM {', '.join(sources)}" if sources else ""
    ctes += (
        f"    INSERT INTO {TaskRecord._meta.db_table} ({columns}, state)\n"
        f"    SELECT {values}, {state}{source}\n"
        "    RETURNING state\n)"
    )
    return PreparedDispatch(record=record, ctes=ctes, params=params, columns=selected, tables=tables, after=after)


def task_dispatched(prepared: PreparedDispatch, row: tuple, *, target_id: Any = None) -> TaskRecord:
    """The record a statement with `prepared` wrote, given the `columns` it selected (and the
    target's id, with `after`); its message is sent once the current transaction commits (at
    once, outside a transaction).

    A fair-share record that took its owner's free slot was written QUEUED: its send is noted
    in Redis, and on the record when it starts. One that waits with a slot free (a release is
    due) gets `fair_release` after the commit; one whose lane is full waits for a record of its
    lane to finish.
    """
    record = prepared.record
    record.state, waiting, in_flight, cap = row
    record._state.adding, record._state.db = False, connection.alias
    if prepared.after:
        record.args = [target_id, *record.args]
        record.target_id = str(target_id)
    if not record.fair_share:
        transaction.on_commit(partial(task_message_send, record), robust=True)
    elif (turn := fair_turn(waiting, in_flight, cap)) == GO:
        transaction.on_commit(partial(fair_send, record, note_in_redis=True), robust=True)
    elif turn == READY:
        transaction.on_commit(partial(fair_release, queue=record.queue), robust=True)
    return record


def task_dispatch(
    *,
    name: str,
    queue: str,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    owner: Any = None,
    target: models.Model | None = None,
    max_in_flight: int | None = None,
    weight: int = 1,
    task_id: uuid.UUID | None = None,
) -> TaskRecord:
    """Record task `name` and send it to `queue` once the current transaction commits.

    With `max_in_flight` (and an owner), the record waits its owner's turn instead: at most that
    many of the owner's records run at once, released round robin between owners by `weight`.
    `task_id` lets the caller store the id on its own row before the record exists. One
    statement; to write the record in a statement of the caller's, see `task_dispatch_prepare`.
    """
    prepared = task_dispatch_prepare(
        name=name,
        queue=queue,
        args=args,
        kwargs=kwargs,
        owner=owner,
        target=target,
        max_in_flight=max_in_flight,
        weight=weight,
        task_id=task_id,
    )
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {prepared.ctes} SELECT {prepared.columns} FROM {prepared.tables}", prepared.params)
        row = cursor.fetchone()
    return task_dispatched(prepared, row)


def task_record_update(*, task_id: str | uuid.UUID, only_if_not_final: bool = True, **fields: Any) -> int:
    """Change a record's state or progress; every change goes through here and is published once.

    A fair-share record that ends frees its lane's slot exactly once: the final transition is
    made from the state read, locked, in the same statement, so of two concurrent final updates
    only one counts.
    The slot is freed and the lane's next record released in the statement that writes the
    final state; that record is sent after the commit.
    """
    fields.setdefault("updated_at", timezone.now())
    if fields.get("state") not in TaskRecord.FINAL_STATES:
        return _record_change(task_id, fields, only_if_not_final=only_if_not_final)
    ended = _final_state_write(task_id, fields, only_if_not_final=only_if_not_final)
    if ended is None:
        return 0
    released, catch_up, queue = ended
    # At once unless the caller's own transaction is still open: never sent before a commit.
    if released is not None:
        transaction.on_commit(partial(_released_send, released, finished=(task_id, fields)), robust=True)
        return 1
    event_publish(task_id, fields)
    if catch_up:
        transaction.on_commit(partial(fair_release, queue=queue), robust=True)
    return 1


def _record_change(
    task_id: str | uuid.UUID, fields: dict[str, Any], *, only_if_not_final: bool, forget: tuple[str, ...] = ()
) -> int:
    """Write a change that is not final and publish it (deleting the Redis keys `forget` in the
    same round trip); how many records changed."""
    queryset = TaskRecord.objects.filter(pk=task_id)
    if only_if_not_final:
        queryset = queryset.exclude(state__in=TaskRecord.FINAL_STATES)
    updated = queryset.update(**fields)
    if updated:
        events_publish([(task_id, fields)], forget=forget)
    return updated


def _send_counted(now: Any) -> dict[str, Any]:
    """The fields that write a send noted only in Redis onto its record (at least one send)."""
    return {"sends": Greatest(F("sends"), 1), "sent_at": Coalesce(F("sent_at"), Value(now, DateTimeField()))}


def _final_state_write(
    task_id: str | uuid.UUID, fields: dict[str, Any], *, only_if_not_final: bool
) -> tuple[TaskRecord | None, bool, str] | None:
    """Write a final state's `fields` and, for a fair record, free its lane's slot and claim the
    lane's next record: one statement, so no transaction of its own.

    Returns (released, catch_up, queue) as `fairshare.lane_finished` reads them, or None when
    the record is gone, or final already and `only_if_not_final`. The record's row is locked
    before the update reads its state, so of two concurrent final updates the second sees the
    first's state (PostgreSQL before 18 has no RETURNING OLD) and frees nothing.
    """
    table, quote = TaskRecord._meta.db_table, connection.ops.quote_name
    assignments, params = [], {"id": TaskRecord._meta.pk.get_db_prep_save(task_id, connection)}
    for number, (name, value) in enumerate(fields.items()):
        field = TaskRecord._meta.get_field(name)
        if value is None:
            assignments.append(f"{quote(field.column)} = NULL")
        else:
            assignments.append(f"{quote(field.column)} = %(f{number})s")
            params[f"f{number}"] = field.get_db_prep_save(value, connection)
    condition = ""
    if only_if_not_final:
        condition = " AND before.state <> ALL(%(final)s)"
        params["final"] = [str(state) for state in TaskRecord.FINAL_STATES]
    sql = f"""
        WITH before AS (
            SELECT id, state FROM {table} WHERE id = %(id)s FOR UPDATE
        ), written AS (
            UPDATE {table} AS t SET {", ".join(assignments)}
              FROM before WHERE t.id = before.id{condition}
         RETURNING before.state AS state_before, t.fair_share, t.owner_id, t.queue
        ), {FINISH_CTES}
        SELECT written.owner_id, written.queue, {FINISH_COLUMNS} FROM written {FINISH_JOINS}
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    owner_id, queue = row[:2]
    released, catch_up = lane_finished(row[2:], owner_id=owner_id, queue=queue)
    return released, catch_up, queue


def _released_send(record: TaskRecord, *, finished: tuple[str | uuid.UUID, dict[str, Any]]) -> None:
    """Publish the `finished` record's event and that the record it released is QUEUED (one
    round trip), then send the released one, noting the send in Redis (no statement: its start
    notes it on the record)."""
    events_publish([finished, (record.id, {"state": State.QUEUED})])
    fair_send(record, note_in_redis=True)


def task_record_start(*, task_id: str | uuid.UUID, worker: str, now: Any) -> int:
    """A worker took the task and starts it: STARTED, by whom, since when. A send noted only in
    Redis (`task_message_send(note_in_redis=True)`) is noted on the record now, and its note
    deleted in the round trip that publishes STARTED (so notes live only while messages wait)."""
    fields = {"state": State.STARTED, "started_at": now, "worker": worker, "updated_at": now, **_send_counted(now)}
    return _record_change(task_id, fields, only_if_not_final=True, forget=(sent_key(task_id),))


def task_progress_set(*, task_id: str | uuid.UUID, percent: int, message: str = "") -> None:
    """Report how far a running task has come (0-100) and what it is doing."""
    task_record_update(
        task_id=task_id,
        state=State.PROGRESS,
        progress_percent=max(0, min(100, percent)),
        progress_message=message[:255],
    )


def task_partial_text_publish(*, task_id: str | uuid.UUID, text: str) -> None:
    """Publish a streaming answer's text so far to the task's event stream (no database write)."""
    event_publish(task_id, {"partial_text": text})


def task_record_abandon(*, task_id: str | uuid.UUID, reason: str) -> bool:
    """End an unfinished record FAILURE with `reason` and tell its app (which ends its row FAILED)."""
    if not task_record_update(task_id=task_id, state=State.FAILURE, error=reason, finished_at=timezone.now()):
        return False
    record = TaskRecord.objects.get(pk=task_id)
    task_record_abandoned.send(sender=TaskRecord, record=record, reason=reason)
    return True


def _orphaned(now: Any) -> list[TaskRecord]:
    """Records a worker had received or started, whose worker has no heartbeat any more (killed)."""
    quiet_since = now - timedelta(seconds=settings.JOBS_WORKER_HEARTBEAT_SECONDS * 3)
    held = TaskRecord.objects.filter(
        state__in=[State.QUEUED, State.STARTED, State.PROGRESS], updated_at__lt=quiet_since
    ).exclude(worker="")
    workers = {worker: worker_alive(worker) for worker in held.order_by().values_list("worker", flat=True).distinct()}
    dead = [worker for worker, alive in workers.items() if not alive]
    return list(held.filter(worker__in=dead).order_by("updated_at")[:1000]) if dead else []


def _noted_as_sent(records: list[TaskRecord], *, queued_before: Any, drained: list[str], now: Any) -> set[str]:
    """Copy sends noted only in Redis (`task_message_send(note_in_redis=True)`) onto those of
    `records` that show none (QUEUED, `sends` 0), and return the ids of the ones that looked
    stranded for that reason alone: their message waits in its queue. If Redis cannot say, none
    of those is sent this time (the broker is that Redis: a send would fail)."""
    unsent = [record for record in records if record.state == State.QUEUED and record.sends == 0]
    noted = sent_noted([record.id for record in unsent])
    if noted is None:
        return {str(record.id) for record in unsent}
    if noted:
        TaskRecord.objects.filter(pk__in=list(noted), state=State.QUEUED, sends=0).update(
            **_send_counted(now)
        )  # updated_at stays: it is the record's last sign of life
    return {
        str(record.id)
        for record in unsent
        if str(record.id) in noted and record.updated_at >= queued_before
        and not (record.worker == "" and record.queue in drained)  # another rule says it was lost
    }  # fmt: skip


def task_records_sweep() -> dict[str, int]:
    """Send again what was never sent or went silent; give up after JOBS_MAX_SENDS sends."""
    now = timezone.now()
    resend_before = now - timedelta(seconds=settings.JOBS_RESEND_AFTER_SECONDS)
    # A queued message may simply wait behind others; only a long silence means it was lost.
    queued_before = now - timedelta(seconds=settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] // 2)
    silent_before = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    # A message a worker took and died with before it could note receiving it is in no queue and
    # held by nobody (Redis gives it back only after the visibility timeout): once its queue has
    # drained, a record that stayed QUEUED with no worker for JOBS_RESEND_AFTER_SECONDS was lost.
    drained = [name for name, length in queue_lengths().items() if length == 0]
    stranded = TaskRecord.objects.filter(
        # Fair-share records wait for their turn on purpose; fair_release sends them.
        Q(state=State.WAITING, fair_share=False, updated_at__lt=resend_before)
        | Q(state=State.QUEUED, sends=0, updated_at__lt=resend_before)  # released, never sent (see _noted_as_sent)
        | Q(state=State.QUEUED, updated_at__lt=queued_before)
        | Q(state=State.QUEUED, worker="", queue__in=drained, updated_at__lt=resend_before)
        | Q(state__in=[State.STARTED, State.PROGRESS, State.RETRY], updated_at__lt=silent_before)
    ).order_by("updated_at")[:1000]
    counts = {"resent": 0, "failed": 0, "unsent": 0}
    noted = _noted_as_sent(list(stranded), queued_before=queued_before, drained=drained, now=now)
    stranded = [*(record for record in stranded if str(record.id) not in noted), *_orphaned(now)]
    for record in stranded:
        if record.sends >= settings.JOBS_MAX_SENDS:
            task_record_abandon(task_id=record.id, reason=f"Gave up after {record.sends} deliveries without a result.")
            counts["failed"] += 1
            continue
        # Back to WAITING first, so a worker that still holds it cannot be overwritten later. In
        # one transaction with the send, so no one else sees it WAITING: a finishing record of a
        # fair lane claims its lane's next WAITING record, and would send this one a second time.
        with transaction.atomic():
            TaskRecord.objects.filter(pk=record.pk, state=record.state).update(state=State.WAITING, updated_at=now)
            sent = task_record_send(record_id=record.id)
        if sent:
            counts["resent"] += 1
        else:
            counts["unsent"] += 1
    counts["lanes_repaired"], released = lanes_repair()
    counts["resent"] += released  # fair-share records whose send had failed go out on their turn
    if any(counts.values()):
        logger.info("sweep: %s", counts)
    return counts


def task_revoke(*, record: TaskRecord, by: Any = None, terminate: bool = False) -> bool:
    """Stop a task that has not finished: it will not start, and a running one is asked to stop.

    The record turns REVOKED at once (workers that never got the broadcast still find the
    request cancelled and skip it); the owning app is told through `task_record_revoked`.
    `terminate` also kills a running task where the pool allows it (prefork); cooperative
    tasks check their request's status and stop on their own.
    """
    updated = task_record_update(task_id=record.id, state=State.REVOKED, finished_at=timezone.now())
    if not updated:
        return False
    try:
        current_app.control.revoke(str(record.id), terminate=terminate, signal="SIGTERM")
    except Exception as exc:  # the record is already REVOKED; workers skip cancelled work anyway
        logger.warning("revoke broadcast for %s failed: %s", record.id, exc)
    record.refresh_from_db()
    task_record_revoked.send(sender=TaskRecord, record=record, by=by)
    return True


def periodic_job_trigger(*, slug: str, by: Any = None) -> TaskRecord:
    """Run a registered periodic job now, through the dispatch path (KeyError if unknown)."""
    job = REGISTRY[slug]
    with transaction.atomic():
        return task_dispatch(name=job.task, queue=job.queue, owner=by)


def task_records_purge(*, failed_older_than_days: int, succeeded_older_than_days: int, batch: int = 10_000) -> int:
    """Delete finished records past their retention, in batches (never one huge DELETE)."""
    now = timezone.now()
    expired = Q(state__in=[State.FAILURE, State.REVOKED], finished_at__lt=now - timedelta(days=failed_older_than_days))
    expired |= Q(state=State.SUCCESS, finished_at__lt=now - timedelta(days=succeeded_older_than_days))
    deleted = 0
    while True:
        ids = list(TaskRecord.objects.filter(expired).values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += TaskRecord.objects.filter(pk__in=ids).delete()[0]


def task_results_expire(*, older_than_seconds: int, batch: int = 10_000) -> int:
    """Delete django-celery-results rows past their expiry, in batches."""
    from django_celery_results.models import TaskResult

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    deleted = 0
    while True:
        ids = list(TaskResult.objects.filter(date_done__lt=cutoff).values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += TaskResult.objects.filter(pk__in=ids).delete()[0]


def cache_clean(*, max_idle_seconds: int, batch: int = 1_000) -> int:
    """Remove cache keys that never expire and that nobody read for `max_idle_seconds`.

    Redis expires keys with a timeout by itself; this catches the ones stored without one.
    Scans in batches (SCAN, never KEYS) so a large cache does not block Redis.
    """
    from django.core.cache import cache

    client = cache._cache.get_client(write=True)  # Django's RedisCache exposes its redis client
    removed = 0
    for keys in _batched(client.scan_iter(count=batch), batch):
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
            pipe.object("idletime", key)
        answers = pipe.execute()
        stale = [
            key
            for key, ttl, idle in zip(keys, answers[::2], answers[1::2], strict=True)
            if ttl == -1 and idle is not None and idle > max_idle_seconds
        ]
        if stale:
            removed += client.delete(*stale)
    return removed


def _batched(iterable: Any, size: int) -> Any:
    chunk: list = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# target_type ("app_label.model") -> function(target_id=..., by=...) that starts the work again.
TASK_RETRY_HANDLERS: dict[str, Callable[..., Any]] = {}


def task_retry_handler_register(target_type: str, function: Callable[..., Any]) -> None:
    """Let an app retry its own work (its rules: statuses, quotas) when an operator asks."""
    TASK_RETRY_HANDLERS[target_type] = function


def task_retry_possible(record: TaskRecord) -> bool:
    """Whether `task_retry` can start a failed record's work again."""
    return record.state == State.FAILURE and (not record.target_type or record.target_type in TASK_RETRY_HANDLERS)


def task_retry(*, record: TaskRecord, by: Any = None) -> Any:
    """Start a failed task's work again: through its app's handler, or as the same task anew.

    A record that acts on a row is retried by the row's app (e.g. a prompt request goes back to
    PENDING with a new task); one without (a periodic job) is dispatched again with its arguments.
    """
    if not task_retry_possible(record):
        raise ValueError(f"Task {record.id} ({record.name}, {record.state}) cannot be retried from here.")
    if record.target_type:
        newer = TaskRecord.objects.filter(
            target_type=record.target_type, target_id=record.target_id, created_at__gt=record.created_at
        ).first()
        if newer is not None:
            raise RetryRefused(f"This failure was already retried: task {newer.id} is {newer.state}.")
        return TASK_RETRY_HANDLERS[record.target_type](target_id=record.target_id, by=by)
    with transaction.atomic():
        return task_dispatch(
            name=record.name, queue=record.queue, args=record.args, kwargs=record.kwargs, owner=record.owner
        )
