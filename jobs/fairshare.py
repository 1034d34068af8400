"""Fair share: hold work back per owner and release it round robin between owners.

A record dispatched with a cap waits as WAITING in the database (never in the broker) and
counts in its owner's lane. `fair_release` sends the next record of the lane whose turn it is
(lowest pass value among lanes with work waiting and a free slot) and advances that lane's pass
by 1/weight. Every step holds the lane's row lock, so two workers finishing at once never
release more than the cap allows. Cost per release: an index look-up of the ready lane and of
the lane's oldest waiting record, independent of how much is waiting.
"""

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from jobs.models import FairLane, TaskRecord

logger = logging.getLogger(__name__)
State = TaskRecord.State
IN_FLIGHT_STATES = (State.QUEUED, State.STARTED, State.PROGRESS, State.RETRY)


def lane_enqueue(*, owner_id: int, queue: str, cap: int, weight: int) -> None:
    """Count one more waiting record in the owner's lane (inside the dispatching transaction).

    A lane that was idle rejoins at the current front of the round (the lowest pass among lanes
    with work waiting), so time spent idle is not saved up as a burst of turns.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO jobs_fairlane (queue, owner_id, waiting, in_flight, cap, weight, pass_value, updated_at)
            VALUES (%(queue)s, %(owner)s, 1, 0, %(cap)s, %(weight)s,
                    COALESCE((SELECT min(pass_value) FROM jobs_fairlane WHERE queue = %(queue)s AND waiting > 0), 0),
                    now())
            ON CONFLICT (queue, owner_id) DO UPDATE SET
                waiting = jobs_fairlane.waiting + 1,
                cap = EXCLUDED.cap,
                weight = EXCLUDED.weight,
                pass_value = CASE WHEN jobs_fairlane.waiting = 0
                                  THEN GREATEST(jobs_fairlane.pass_value, EXCLUDED.pass_value)
                                  ELSE jobs_fairlane.pass_value END,
                updated_at = now()
            """,
            {"queue": queue, "owner": owner_id, "cap": max(1, cap), "weight": max(1, weight)},
        )


def fair_release(*, queue: str, most: int = 100) -> int:
    """Send what the caps allow in `queue`, one owner's turn at a time; returns how many were sent."""
    from jobs.services import task_record_send, task_record_update

    released = 0
    while released < most:
        with transaction.atomic():
            lane = (
                FairLane.objects.select_for_update(skip_locked=True)
                .filter(queue=queue, waiting__gt=0, in_flight__lt=F("cap"))
                .order_by("pass_value", "id")
                .first()
            )
            if lane is None:
                return released
            record = (
                TaskRecord.objects.select_for_update(skip_locked=True)
                .filter(owner_id=lane.owner_id, queue=queue, state=State.WAITING, fair_share=True)
                .order_by("created_at")
                .first()
            )
            if record is None:  # the counter drifted; fix it and look again
                lane.waiting = _count(lane, [State.WAITING])
                lane.save(update_fields=["waiting", "updated_at"])
                continue
            task_record_update(task_id=record.id, state=State.QUEUED)
            lane.waiting = max(0, lane.waiting - 1)
            lane.in_flight += 1
            lane.pass_value += 1.0 / lane.weight
            lane.save(update_fields=["waiting", "in_flight", "pass_value", "updated_at"])
        if not task_record_send(record_id=record.id):  # broker down: give the turn back, stop
            FairLane.objects.filter(pk=lane.pk).update(waiting=F("waiting") + 1, in_flight=F("in_flight") - 1)
            return released
        released += 1
    return released


def lane_finished(*, owner_id: int, queue: str, was_waiting: bool) -> None:
    """A fair record ended: free its slot (or its place in line) and release the next turn."""
    field = "waiting" if was_waiting else "in_flight"
    FairLane.objects.filter(queue=queue, owner_id=owner_id, **{f"{field}__gt": 0}).update(**{field: F(field) - 1})
    fair_release(queue=queue)


def lanes_repair(*, idle_seconds: int = 60) -> tuple[int, int]:
    """Recount the lanes that saw no activity for a while, then release what they allow.

    Returns (lanes recounted, records released).

    Counters can drift when a process dies between two steps; the records are the truth.
    """
    cutoff = timezone.now() - timedelta(seconds=idle_seconds)
    repaired = 0
    for lane in FairLane.objects.filter(updated_at__lt=cutoff).exclude(waiting=0, in_flight=0).iterator():
        with transaction.atomic():
            lane = FairLane.objects.select_for_update(skip_locked=True).filter(pk=lane.pk).first()
            if lane is None:
                continue
            waiting, in_flight = _count(lane, [State.WAITING]), _count(lane, IN_FLIGHT_STATES)
            if (waiting, in_flight) != (lane.waiting, lane.in_flight):
                lane.waiting, lane.in_flight = waiting, in_flight
                lane.save(update_fields=["waiting", "in_flight", "updated_at"])
                repaired += 1
    released = 0
    for queue in FairLane.objects.filter(waiting__gt=0).values_list("queue", flat=True).distinct():
        released += fair_release(queue=queue)
    return repaired, released


def waiting_position(record: TaskRecord) -> int | None:
    """1 for the owner's next record to be released in its queue; None if it is not waiting."""
    if not record.fair_share or record.state != State.WAITING:
        return None
    earlier = TaskRecord.objects.filter(
        owner_id=record.owner_id, queue=record.queue, state=State.WAITING, fair_share=True,
        created_at__lt=record.created_at,
    )  # fmt: skip
    return earlier.count() + 1


def _count(lane: FairLane, states: list[str] | tuple[str, ...]) -> int:
    return TaskRecord.objects.filter(
        owner_id=lane.owner_id, queue=lane.queue, fair_share=True, state__in=states
    ).count()
