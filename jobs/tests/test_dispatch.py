"""The dispatch path's invariants: recorded with the work, sent after commit, never stranded."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from jobs.models import TaskRecord
from jobs.services import task_dispatch, task_records_sweep

QUEUE = "test.unconsumed"  # no worker listens here, so messages stay countable


def test_nothing_reaches_the_broker_before_the_transaction_commits(transactional_db, broker, make_user):
    user = make_user()

    with transaction.atomic():
        record = task_dispatch(name="jobs.sweep_task_records", queue=QUEUE, owner=user)
        assert broker.llen(QUEUE) == 0
        assert TaskRecord.objects.get(pk=record.pk).state == "WAITING"

    assert broker.llen(QUEUE) == 1
    record.refresh_from_db()
    assert record.state == "QUEUED"
    assert record.sends == 1 and record.sent_at is not None


def test_a_rolled_back_dispatch_leaves_no_record_and_no_message(transactional_db, broker, make_user):
    user = make_user()

    with pytest.raises(RuntimeError), transaction.atomic():
        record = task_dispatch(name="jobs.sweep_task_records", queue=QUEUE, owner=user)
        raise RuntimeError("the view failed after dispatching")

    assert not TaskRecord.objects.filter(pk=record.pk).exists()
    assert broker.llen(QUEUE) == 0


def test_health_reports_database_broker_and_the_live_worker(worker, client):
    response = client.get("/api/v1/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["workers"]["ok"] and body["workers"]["seen"]


def test_sweeper_leaves_recent_and_finished_records_alone(db, make_user):
    user = make_user()
    TaskRecord.objects.create(name="x", queue=QUEUE, owner=user)  # WAITING, but just now
    done = TaskRecord.objects.create(name="x", queue=QUEUE, owner=user, state="SUCCESS")
    TaskRecord.objects.filter(pk=done.pk).update(updated_at=timezone.now() - timedelta(days=1))

    assert task_records_sweep() == {"resent": 0, "failed": 0, "unsent": 0, "lanes_repaired": 0}
