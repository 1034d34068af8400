"""What a record's send puts on the broker: Celery's message, without a declaration on Redis."""

import json
import uuid

import pytest
from celery.utils.saferepr import saferepr
from django.db import transaction
from kombu import Producer

from jobs.models import TaskRecord
from jobs.services import task_dispatch

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
