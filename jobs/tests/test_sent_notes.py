"""A send noted in Redis is noted by the push itself: one round trip, and never without the message."""

import json

import pytest
import redis.connection
from django.db import transaction

from jobs import sending
from jobs.broker import SENT_NOTE_HEADER
from jobs.models import FairLane, TaskRecord
from jobs.sending import push_notes_sends, sent_noted
from jobs.services import task_dispatch

QUEUE = "test.unconsumed.notes"  # no worker listens here


def dispatch(user):
    with transaction.atomic():
        return task_dispatch(name="jobs.sweep_task_records", queue=QUEUE, owner=user, max_in_flight=1)


def test_a_fair_record_sent_at_once_is_pushed_and_noted_in_one_round_trip(
    transactional_db, broker, make_user, monkeypatch
):
    dispatch(make_user())  # the first push also loads the script into Redis
    broker.delete(QUEUE)
    commands = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(connection, command, *args, **kwargs):
        commands.append(command)
        return send(connection, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    record = dispatch(make_user())
    monkeypatch.undo()

    assert len(commands) == 1, commands
    assert broker.llen(QUEUE) == 1
    message = json.loads(broker.lindex(QUEUE, 0))
    assert message["headers"]["id"] == str(record.pk)
    assert SENT_NOTE_HEADER not in message["headers"]  # a retry of the task copies its headers
    assert TaskRecord.objects.get(pk=record.pk).state == "QUEUED"
    assert sent_noted([record.pk]) == {str(record.pk)}


def test_a_push_that_fails_leaves_no_note_and_gives_the_turn_back(transactional_db, broker, make_user):
    broker.set(QUEUE, "not a list")  # every LPUSH onto it fails (WRONGTYPE)
    user = make_user()

    record = dispatch(user)

    assert broker.get(QUEUE) == b"not a list"
    assert sent_noted([record.pk]) == set()
    assert TaskRecord.objects.get(pk=record.pk).state == "WAITING"  # the sweeper sends it later
    lane = FairLane.objects.get(owner=user, queue=QUEUE)
    assert (lane.waiting, lane.in_flight) == (1, 0)


def test_with_a_transport_that_does_not_note_sends_the_note_is_set_after_the_push(transactional_db, broker, make_user):
    assert push_notes_sends()  # redis:// is served by jobs.broker.Transport
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sending, "push_notes_sends", lambda: False)
        record = dispatch(make_user())

    assert broker.llen(QUEUE) == 1
    assert SENT_NOTE_HEADER not in json.loads(broker.lindex(QUEUE, 0))["headers"]
    assert sent_noted([record.pk]) == {str(record.pk)}
