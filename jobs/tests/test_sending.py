"""What a record's send puts on the broker: Celery's message, without a declaration on Redis."""

import json
import uuid

import pytest
from celery import current_app
from celery.app.task import extract_exec_options
from celery.utils.saferepr import saferepr
from django.db import transaction
from kombu import Producer

from jobs.models import TaskRecord
from jobs.sending import SEND_RETRY_POLICY, TASK_REQUEST_ID_HEADER, _printable
from jobs.services import task_dispatch
from jobs.tasks import sweep_task_records

QUEUE = "test.unconsumed.sending"  # no worker listens here


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ([42], {}),  # a request's id: written by repr()
        ([42, 1.5, None, True], {"attempt": 2, "note": None}),
        ([42, "x" * 2000, "it's\n"], {"language": "fa"}),  # strings: written by Celery's saferepr
        (list(range(400)), {}),  # longer than Celery's 1,024 characters: cut by saferepr
    ],
)
def test_a_send_puts_celerys_message_with_its_printable_arguments_and_declares_nothing(
    transactional_db, broker, args, kwargs
):
    queue = f"{QUEUE}.{uuid.uuid4().hex}"  # never declared by this process before
    try:
        with transaction.atomic():
            record = task_dispatch(name="jobs.sweep_task_records", queue=queue, args=args, kwargs=kwargs)

        message = json.loads(broker.lindex(queue, 0))
        headers = message["headers"]
        assert (headers["id"], headers["task"]) == (str(record.pk), "jobs.sweep_task_records")
        # The copies Flower and the worker's log show: what Celery's saferepr writes, cut as it cuts.
        assert headers["argsrepr"] == saferepr(args, 1024)
        assert headers["kwargsrepr"] == saferepr(kwargs, 1024)
        assert message["properties"]["delivery_info"]["routing_key"] == queue
        # Celery's default declares the queue first: on Redis a binding set written per new queue.
        assert not broker.exists(f"_kombu.binding.{queue}")
    finally:
        broker.delete(queue, f"_kombu.binding.{queue}")


@pytest.mark.parametrize("args, kwargs", [([42], {}), ([42, "it's", None], {"language": "fa", "attempt": 2})])
def test_a_records_message_is_the_one_celerys_send_task_writes(transactional_db, broker, settings, args, kwargs):
    """jobs.sending publishes with Celery's own two calls, not through `send_task`: a worker and
    Flower must read the same message all the same (a Celery upgrade that changes it fails here)."""
    queue = f"{QUEUE}.{uuid.uuid4().hex}"
    assert sweep_task_records.name in current_app.tasks  # registered here, as in a worker
    try:
        with transaction.atomic():
            record = task_dispatch(name="jobs.sweep_task_records", queue=queue, args=args, kwargs=kwargs)
        current_app.send_task(  # what jobs.sending called before
            record.name,
            args=args,
            kwargs=kwargs,
            task_id=str(record.pk),
            queue=queue,
            headers={TASK_REQUEST_ID_HEADER: record.request_id},
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
            declare=(),
            argsrepr=_printable(args),
            kwargsrepr=_printable(kwargs),
        )

        ours, celerys = (json.loads(raw) for raw in broker.lrange(queue, 0, -1)[::-1])  # oldest first
        assert ours["body"] == celerys["body"]
        # send_task writes a registered task's time limits (here Celery's settings) into the
        # message, a record none: the worker applies the task's own either way
        # (celery/worker/request.py: `time_limit or task.time_limit`).
        assert ours["headers"].pop("timelimit") == [None, None]
        limits = [settings.CELERY_TASK_TIME_LIMIT, settings.CELERY_TASK_SOFT_TIME_LIMIT]
        assert celerys["headers"].pop("timelimit") == limits
        assert ours["headers"] == celerys["headers"]
        assert ours["headers"]["task"] == "jobs.sweep_task_records" and ours["headers"]["id"] == str(record.pk)
        # Each message has a tag of its own; replies go to the process here, to the thread there;
        # send_task also copies the options it does not take itself (argsrepr, kwargsrepr) into the
        # properties, where nothing reads them (the worker reads them from the headers, compared above).
        differ = {"delivery_tag", "reply_to", "argsrepr", "kwargsrepr"}
        assert {"delivery_tag", "reply_to"} <= ours["properties"].keys()
        assert {k: v for k, v in ours["properties"].items() if k not in differ} == {
            k: v for k, v in celerys["properties"].items() if k not in differ
        }
        assert ours["properties"]["reply_to"] == current_app.oid
        assert {k: v for k, v in ours.items() if k not in ("body", "headers", "properties")} == {
            k: v for k, v in celerys.items() if k not in ("body", "headers", "properties")
        }
    finally:
        broker.delete(queue)


def test_no_task_has_options_that_a_records_send_would_leave_out(settings):
    """A record's send does not merge the registered task's options into the message, as
    send_task does: a task declaring one (expires, priority, a serializer of its own...) would
    lose it. The queue is the record's; time limits the worker applies from the task itself."""
    current_app.loader.import_default_modules()  # every app's tasks, as a worker has them
    tasks = [task for name, task in current_app.tasks.items() if not name.startswith("celery.")]
    assert len(tasks) > 10

    for task in tasks:
        options = {name: value for name, value in extract_exec_options(task).items() if value is not None}
        assert options.pop("serializer", settings.CELERY_TASK_SERIALIZER) == settings.CELERY_TASK_SERIALIZER
        assert set(options) <= {"queue", "time_limit", "soft_time_limit"}, (task.name, options)


def _dispatch(*args: object) -> TaskRecord:
    with transaction.atomic():  # sent once this commits
        return task_dispatch(name="jobs.sweep_task_records", queue=QUEUE, args=list(args))


def _queued_ids(broker) -> list[str]:
    return [json.loads(message)["headers"]["id"] for message in broker.lrange(QUEUE, 0, -1)]


def test_a_failed_publish_leaves_the_record_to_the_sweeper_and_the_next_send_arrives(
    transactional_db, broker, monkeypatch
):
    _dispatch(1)

    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError("the broker went away")

    monkeypatch.setattr(Producer, "publish", refuse)
    failed = _dispatch(2)
    monkeypatch.undo()
    sent = _dispatch(3)

    assert TaskRecord.objects.get(pk=failed.pk).state == TaskRecord.State.WAITING  # left to the sweeper
    queued = _queued_ids(broker)
    assert str(sent.pk) in queued and str(failed.pk) not in queued
