"""What fair share costs: the next record is released by the statement that ends the previous one."""

import json
import threading
from datetime import timedelta

import pytest
from celery.signals import before_task_publish
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.events import events_read
from jobs.models import FairLane, TaskRecord
from jobs.sending import sent_key, sent_noted
from jobs.services import task_dispatch, task_dispatch_prepare, task_record_update, task_records_sweep

QUEUE = "test.unconsumed.fair"  # no worker listens here, so messages stay countable
# The final state, the slot freed and the next record claimed: one statement, no transaction of
# its own. The send is noted in Redis, not by a statement.
MOST_QUERIES_PER_FINISH_AND_RELEASE = 1


def dispatch(user, count):
    with transaction.atomic():
        return [
            task_dispatch(name="jobs.sweep_task_records", queue=QUEUE, owner=user, max_in_flight=1)
            for _ in range(count)
        ]


def test_a_finishing_record_releases_its_lanes_next_one_in_the_same_statement(transactional_db, broker, make_user):
    user = make_user()
    first, second, third = dispatch(user, 3)
    assert broker.llen(QUEUE) == 1
    assert [TaskRecord.objects.get(pk=r.pk).state for r in (first, second, third)] == ["QUEUED", "WAITING", "WAITING"]

    with CaptureQueriesContext(connection) as queries:
        task_record_update(task_id=first.pk, state="SUCCESS", finished_at=timezone.now())

    statements = [query["sql"].strip().split()[0].upper() for query in queries.captured_queries]
    assert len(statements) <= MOST_QUERIES_PER_FINISH_AND_RELEASE, "\n".join(statements)
    assert "BEGIN" not in statements
    assert broker.llen(QUEUE) == 2
    assert TaskRecord.objects.get(pk=second.pk).state == "QUEUED"
    assert sent_noted([second.pk]) == {str(second.pk)}  # noted in Redis; on the record when it starts
    assert TaskRecord.objects.get(pk=third.pk).state == "WAITING"
    lane = FairLane.objects.get(owner=user, queue=QUEUE)
    assert (lane.waiting, lane.in_flight) == (1, 1)
    # Both streams heard of it (published together, in one round trip).
    assert [event["state"] for _, event in events_read(first.pk)] == ["SUCCESS"]
    assert [event["state"] for _, event in events_read(second.pk)] == ["QUEUED"]


def test_finishing_inside_an_open_transaction_sends_only_after_it_commits(transactional_db, broker, make_user):
    user = make_user()
    first, second = dispatch(user, 2)

    with transaction.atomic():
        task_record_update(task_id=first.pk, state="REVOKED", finished_at=timezone.now())
        assert broker.llen(QUEUE) == 1
        assert events_read(second.pk) == []

    assert broker.llen(QUEUE) == 2
    assert TaskRecord.objects.get(pk=second.pk).state == "QUEUED"
    assert [event["state"] for _, event in events_read(second.pk)] == ["QUEUED"]


def test_a_waiting_record_revoked_gives_its_place_back_without_a_release(transactional_db, broker, make_user):
    user = make_user()
    _, second = dispatch(user, 2)

    task_record_update(task_id=second.pk, state="REVOKED", finished_at=timezone.now())

    lane = FairLane.objects.get(owner=user, queue=QUEUE)
    assert (lane.waiting, lane.in_flight) == (0, 1)
    assert broker.llen(QUEUE) == 1


def test_two_final_updates_at_once_free_the_slot_once(transactional_db, broker, make_user):
    """Of a worker's SUCCESS and a revoke racing on one record, only one counts (rounds of real threads)."""
    for _ in range(8):
        user = make_user()
        first, second = dispatch(user, 2)
        barrier = threading.Barrier(2)
        counted: list[int] = []

        def finish(state: str, record_id=first.pk, barrier=barrier, counted=counted) -> None:
            try:
                barrier.wait(timeout=10)
                counted.append(task_record_update(task_id=record_id, state=state, finished_at=timezone.now()))
            finally:
                connection.close()  # each thread's own connection

        threads = [threading.Thread(target=finish, args=(state,)) for state in ("SUCCESS", "REVOKED")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert sorted(counted) == [0, 1]
        lane = FairLane.objects.get(owner=user, queue=QUEUE)
        assert (lane.waiting, lane.in_flight) == (0, 1)  # the second took the one slot freed
        assert TaskRecord.objects.get(pk=second.pk).state == "QUEUED"


@pytest.mark.parametrize("noted", [True, False])
def test_the_sweeper_resends_a_released_record_only_if_its_send_was_not_noted(
    transactional_db, broker, make_user, settings, noted
):
    """A released record stays QUEUED with no send on the record until it starts: the note in Redis
    keeps the sweeper from sending it twice while it waits in its queue (the sweeper copies the
    note onto the record); without the note (its sender died between the commit and the send)
    it is sent again."""
    user = make_user()
    first, second = dispatch(user, 2)
    task_record_update(task_id=first.pk, state="SUCCESS", finished_at=timezone.now())
    assert broker.llen(QUEUE) == 2
    if not noted:
        broker.delete(sent_key(second.pk))
        broker.lpop(QUEUE)  # the newest message: the one a dead sender would not have sent
    old = timezone.now() - timedelta(seconds=settings.JOBS_RESEND_AFTER_SECONDS + 1)
    TaskRecord.objects.filter(pk=second.pk).update(updated_at=old)

    task_records_sweep()

    record = TaskRecord.objects.get(pk=second.pk)
    assert record.state == "QUEUED"
    if noted:
        assert (broker.llen(QUEUE), record.sends, record.updated_at) == (2, 1, old)
    else:
        assert (broker.llen(QUEUE), record.sends) == (2, 1)


def _messages_for(broker, task_id) -> int:
    return sum(json.loads(body)["headers"]["id"] == str(task_id) for body in broker.lrange(QUEUE, 0, -1))


def test_a_record_the_sweeper_sends_again_is_not_released_a_second_time_meanwhile(
    transactional_db, broker, make_user, settings
):
    """The sweeper sends a stranded fair record again while another record of its lane finishes:
    the finishing one releases the lane's waiting record, never the one being sent again (which
    would then be in the queue twice, and the waiting one left behind). The finish runs, in
    another thread, at the moment the sweeper's message is being published."""
    user = make_user()
    with transaction.atomic():
        stranded, running, waiting = [
            task_dispatch(name="jobs.sweep_task_records", queue=QUEUE, owner=user, max_in_flight=2) for _ in range(3)
        ]
    # `stranded` was released but its sender died before sending: no message, no note.
    broker.delete(QUEUE, sent_key(stranded.pk))
    old = timezone.now() - timedelta(seconds=settings.JOBS_RESEND_AFTER_SECONDS + 1)
    TaskRecord.objects.filter(pk=stranded.pk).update(updated_at=old)
    finished: list[int] = []
    started: list[bool] = []

    def finish_running() -> None:
        try:
            finished.append(task_record_update(task_id=running.pk, state="SUCCESS", finished_at=timezone.now()))
        finally:
            connection.close()

    def during_publish(headers=None, **_) -> None:
        if headers and headers.get("id") == str(stranded.pk) and not started:
            started.append(True)
            thread = threading.Thread(target=finish_running)
            thread.start()
            thread.join(timeout=30)

    before_task_publish.connect(during_publish, weak=False)
    try:
        task_records_sweep()
    finally:
        before_task_publish.disconnect(during_publish)

    assert finished == [1]
    assert _messages_for(broker, stranded.pk) == 1
    assert _messages_for(broker, waiting.pk) == 1
    assert TaskRecord.objects.get(pk=waiting.pk).state == "QUEUED"
    lane = FairLane.objects.get(owner=user, queue=QUEUE)
    assert (lane.waiting, lane.in_flight) == (0, 2)  # `stranded` and `waiting`


def test_a_fair_dispatch_finds_the_front_of_the_round_by_an_index_however_many_lanes_there_are(
    transactional_db, make_user
):
    """Lanes are kept once made (one per owner and queue): the front of the round must not be
    found by reading all of them."""
    user = make_user()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO jobs_fairlane (queue, owner_id, waiting, in_flight, cap, weight, pass_value, updated_at)"
            " SELECT 'idle.' || n, %s, (n %% 100 = 0)::int, 0, 1, 1, n, now() FROM generate_series(1, 20000) AS n",
            [user.pk],
        )
        cursor.execute("ANALYZE jobs_fairlane")
    prepared = task_dispatch_prepare(name="jobs.sweep_task_records", queue="idle.100", owner=user, max_in_flight=1)

    with connection.cursor() as cursor:
        cursor.execute(
            f"EXPLAIN (FORMAT JSON) WITH {prepared.ctes} SELECT {prepared.columns} FROM {prepared.tables}",
            prepared.params,
        )
        plan = json.dumps(cursor.fetchone()[0])

    assert "jobs_fair_lane_waiting_idx" in plan
    assert '"Node Type": "Seq Scan"' not in plan, plan
