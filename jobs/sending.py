"""Putting a recorded task's message on the broker, and noting that it was sent.

Kept apart from `jobs.services` so that `jobs.fairshare` sends the records it releases the same way.
"""

import logging
import uuid
from functools import cache
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection
from django.utils import timezone

from jobs.broker import SENT_NOTE_HEADER, Transport, sent_key
from jobs.events import event_publish, events_redis
from jobs.models import TaskRecord

logger = logging.getLogger(__name__)
State = TaskRecord.State

# The message header that carries the request id to the worker (jobs/worker_signals.py binds it).
TASK_REQUEST_ID_HEADER = "request_id"

# Publishing to a broker that is down must fail fast: the sweeper sends the record later.
SEND_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}

# After a send, one statement counts it and moves WAITING to QUEUED (a fast worker may already
# have marked it STARTED, which stays); it returns the state before, so QUEUED is published once.
_SENT_SQL = """
    UPDATE jobs_taskrecord AS record
       SET sends = record.sends + 1, sent_at = %(now)s,
           state = CASE WHEN record.state = 'WAITING' THEN 'QUEUED' ELSE record.state END
      FROM (SELECT id, state FROM jobs_taskrecord WHERE id = %(id)s FOR UPDATE) AS before
     WHERE record.id = before.id
 RETURNING before.state
"""


def sent_note_ttl() -> int:
    """Seconds a send noted in Redis is kept at most (its record's start deletes it): half the
    visibility timeout, after which the sweeper sends a record still QUEUED again anyway."""
    return settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] // 2


def sent_noted(task_ids: list[Any]) -> set[str] | None:
    """Which of `task_ids` have a send noted in Redis (as strings); None if Redis cannot say."""
    if not task_ids:
        return set()
    try:
        values = events_redis().mget([sent_key(task_id) for task_id in task_ids])
    except Exception as exc:  # redis-py raises several kinds
        logger.warning("sent notes not read: %s", exc)
        return None
    return {str(task_id) for task_id, value in zip(task_ids, values, strict=True) if value is not None}


# Celery writes a printable copy of a message's arguments (Flower and the worker's log show it)
# with `saferepr`, made for any object: about a tenth of a send's CPU. For a list or dict of
# numbers (most records: a request's id), repr() is the same text; anything else is left to it.
_REPR_MAXSIZE = 1024  # Celery's argsrepr_maxsize and kwargsrepr_maxsize
_PLAIN = (int, float, bool, type(None))


def _printable(value: list | dict) -> str | None:
    """`saferepr(value)` where repr() writes the same, else None (Celery writes it)."""
    items = value.values() if isinstance(value, dict) else value
    if not all(type(item) in _PLAIN for item in items):
        return None
    if isinstance(value, dict) and not all(isinstance(key, str) and key.isidentifier() for key in value):
        return None
    text = repr(value)
    return text if len(text) <= _REPR_MAXSIZE else None


@cache
def _transport_class() -> type:
    """The class of the broker's kombu transport (read once: it comes from the broker URL)."""
    with current_app.connection_for_write() as broker:
        return type(broker.transport)


def publish_declares() -> tuple | None:
    """What a publish declares first: nothing on Redis (kombu's Redis transport makes a queue's
    list with its first push, and Celery publishes to the nameless exchange, which needs no
    binding), so that a send is not a check of a declaration cache; Celery's default (the
    queue) on any other transport."""
    return () if _transport_class().driver_type == "redis" else None


def push_notes_sends() -> bool:
    """Whether the broker's transport notes a send with its push (`jobs.broker.Transport`, which
    `config/celery.py` makes the one for redis:// and rediss:// URLs)."""
    return issubclass(_transport_class(), Transport)


def _publish(record: TaskRecord, headers: dict[str, Any]) -> None:
    """Put `record`'s message on its queue: the message `send_task` writes, published as it publishes.

    `send_task` is Celery's message (`app.amqp.create_task_message`) published by
    `app.amqp.send_task_message` on a producer from the app's pool; this makes the same two calls
    with the same arguments. What `send_task` does besides is for callers a record does not have
    (about a third of a send's CPU, mostly settings looked up on every call): it routes by
    `task_routes` (a record's queue is its route: `jobs.queues` chose it), merges the registered
    task's options (the worker applies its time limits itself), names the sending thread for
    replies (results go to the database here, so the process is named), makes the sent task a
    child of a task running in this thread (a record is sent on its own, whichever task releases
    it) and returns an `AsyncResult`. `jobs/tests/test_sending.py` compares both messages, and
    checks that no task declares an option (expires, priority...) this would leave out.
    """
    app = current_app
    amqp = app.amqp
    message = amqp.create_task_message(
        str(record.id),
        record.name,
        record.args,
        record.kwargs,
        reply_to=app.oid,
        create_sent_event=app.conf.task_send_sent_event,
        ignore_result=None,  # as send_task writes it for a task without that option
        argsrepr=_printable(record.args),
        kwargsrepr=_printable(record.kwargs),
    )
    with app.producer_or_acquire() as producer:
        amqp.send_task_message(
            producer,
            record.name,
            message,
            queue=record.queue,
            headers=headers,
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
            declare=publish_declares(),
        )


def task_message_send(record: TaskRecord, *, note_in_redis: bool = False) -> bool:
    """Send `record`'s message (its id, name, arguments and queue are enough; it need not be
    loaded from the database); False, with the record back to WAITING for the sweeper, on failure.

    The send is noted on the record (`sends`, `sent_at`, WAITING to QUEUED), or, with
    `note_in_redis`, for a record already QUEUED, in Redis (`sent_key`), by the push itself:
    `jobs.broker.Channel` sets the note in the round trip that puts the message on its queue (no
    statement, no round trip of its own). The record's start then notes it on the record (the
    STARTED update), and the sweeper reads the Redis note meanwhile.
    """
    headers = {TASK_REQUEST_ID_HEADER: record.request_id}  # "" too: never another request's
    noted_by_push = note_in_redis and push_notes_sends()
    if noted_by_push:
        headers[SENT_NOTE_HEADER] = sent_note_ttl()
    try:
        _publish(record, headers)
    except Exception as exc:  # kombu raises many kinds (OperationalError, OSError, ...)
        logger.warning("task %s not sent, the sweeper will retry: %s", record.id, exc)
        TaskRecord.objects.filter(pk=record.id, state__in=TaskRecord.UNSENT_STATES).update(
            state=State.WAITING, updated_at=timezone.now()
        )
        return False
    if noted_by_push:
        return True
    if note_in_redis:
        try:
            events_redis().set(sent_key(record.id), "1", ex=sent_note_ttl())
        except Exception as exc:  # sent all the same; without the note the sweeper may send it again
            logger.warning("send of task %s not noted: %s", record.id, exc)
        return True
    with connection.cursor() as cursor:
        cursor.execute(_SENT_SQL, {"id": record.id, "now": timezone.now()})
        row = cursor.fetchone()
    if row is not None and row[0] == State.WAITING:
        event_publish(record.id, {"state": State.QUEUED})
    return True


def task_record_send(*, record_id: uuid.UUID) -> bool:
    """Send a WAITING or QUEUED record's message; False (record left to the sweeper) on failure."""
    record = TaskRecord.objects.filter(pk=record_id, state__in=TaskRecord.UNSENT_STATES).first()
    return record is not None and task_message_send(record)
