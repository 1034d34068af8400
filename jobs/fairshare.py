"""Fair share: hold work back per owner and release it round robin between owners.

A record dispatched with a cap waits as WAITING in the database (never in the broker) and
counts in its owner's lane. `fair_release` sends the next record of the lane whose turn it is
(lowest pass value among lanes with work waiting and a free slot) and advances that lane's pass
by 1/weight. Every step holds the lane's row lock, so two workers finishing at once never
release more than the cap allows. Cost per release: an index look-up of the ready lane and of
the lane's oldest waiting record, independent of how much is waiting.
"""

import json
import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs.models import FairLane, TaskRecord
from jobs.sending import task_message_send

logger = logging.getLogger(__name__)
State = TaskRecord.State
IN_FLIGHT_STATES = (State.QUEUED, State.STARTED, State.PROGRESS, State.RETRY)


# What the dispatching transaction does with a new fair record, decided under the lane's lock.
GO = "go"  # the lane was idle with a free slot: counted in flight, created QUEUED, sent after commit
READY = "ready"  # others of the lane wait and a slot is free (a release is due): fair_release after commit
FULL = "full"  # the lane's slots are taken: one of its records finishing releases the next

# Counts a new record in its owner's lane: a lane with nothing waiting and a free slot takes
# its turn at once (in flight, pass advanced); otherwise the record is counted as waiting.
# `{gate}` is the FROM list that yields the one row to count: `front`, and the caller's CTE that
# inserts the record's target when the record is written in the caller's statement (no row, no count).
_LANE_ENQUEUE_SQL = """
    front AS (  -- the current front of the round: the lowest pass among lanes with work waiting
        SELECT COALESCE(min(pass_value), 0) AS pass_value FROM jobs_fairlane WHERE queue = %(d_queue)s AND waiting > 0
    ), lane AS (
        INSERT INTO jobs_fairlane (queue, owner_id, waiting, in_flight, cap, weight, pass_value, updated_at)
        SELECT %(d_queue)s::varchar, %(d_owner)s, 0, 1, %(d_cap)s, %(d_weight)s,
               front.pass_value + 1.0 / %(d_weight)s, now()
          FROM {gate}  -- the cast: with server-side binding, one parameter gets one type in the whole statement
        ON CONFLICT (queue, owner_id) DO UPDATE SET
            waiting = jobs_fairlane.waiting + CASE WHEN {free} THEN 0 ELSE 1 END,
            in_flight = jobs_fairlane.in_flight + CASE WHEN {free} THEN 1 ELSE 0 END,
            cap = EXCLUDED.cap,
            weight = EXCLUDED.weight,
            pass_value = CASE WHEN jobs_fairlane.waiting = 0
                              THEN GREATEST(jobs_fairlane.pass_value, (SELECT pass_value FROM front))
                              ELSE jobs_fairlane.pass_value END
                         + CASE WHEN {free} THEN 1.0 / EXCLUDED.weight ELSE 0 END,
            updated_at = now()
        RETURNING waiting, in_flight, cap
    )"""
_LANE_FREE = "(jobs_fairlane.waiting = 0 AND jobs_fairlane.in_flight < EXCLUDED.cap)"


def fair_enqueue_ctes(
    *, cap: int, weight: int, queue: str, owner_id: int, after: str | None = None
) -> tuple[str, dict]:
    """The CTEs `front` and `lane` that count a new fair-share record in its owner's lane, and their
    parameters; the record's insert reads `lane` (`fair_turn` says what the row it returns means).

    The lane's upsert decides, under the lane's row lock, whether the record takes its turn at
    once (GO: inserted QUEUED and counted in flight, its pass advanced, as `fair_release` would do
    right after the commit, but without a transaction of its own) or waits (inserted WAITING).
    Caps are per lane, so taking a free slot of one's own lane holds back no other owner. A lane
    that was idle rejoins at the current front of the round (the lowest pass among lanes with
    work waiting), so time spent idle is not saved up as a burst of turns. With `after` (a CTE of
    the caller's statement), the lane counts the record only if that CTE returns a row.
    """
    gate = f"front, {after}" if after else "front"
    sql = _LANE_ENQUEUE_SQL.format(gate=gate, free=_LANE_FREE)
    params = {"d_queue": queue, "d_owner": owner_id, "d_cap": max(1, cap), "d_weight": max(1, weight)}
    return sql, params


def fair_turn(waiting: int, in_flight: int, cap: int) -> str:
    """What the lane's row after counting a new record (`fair_enqueue_ctes`) means for it: GO,
    READY or FULL."""
    if waiting == 0:  # nothing was added to `waiting`: the new record took a slot
        return GO
    return READY if in_flight < cap else FULL


def fair_release(*, queue: str, most: int = 100) -> int:
    """Send what the caps allow in `queue`, one owner's turn at a time; returns how many were sent.

    The regular path releases without it (a record that finds a free slot goes at once, a
    finishing record releases its lane's next one); this catches up after drift or a failed send.
    """
    from jobs.services import task_record_update

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
        if not fair_send(record):  # broker down: the turn was given back; stop
            return released
        released += 1
    return released


def fair_send(record: TaskRecord, *, note_in_redis: bool = False) -> bool:
    """Send a released record; if the broker refuses, give its turn back (it waits again).
    `note_in_redis` as for `task_message_send`."""
    if task_message_send(record, note_in_redis=note_in_redis):
        return True
    FairLane.objects.filter(queue=record.queue, owner_id=record.owner_id, in_flight__gt=0).update(
        waiting=F("waiting") + 1, in_flight=F("in_flight") - 1
    )
    return False


# Appended to a statement whose `written` CTE ended a record (RETURNING state_before, fair_share,
# owner_id, queue): if it was a fair record, its slot (or its place in line) is freed and, if that
# leaves a slot free with work waiting, the lane's oldest waiting record takes it, in the same
# statement as the final state. The lane's row is locked and read as it is now (`freed`); the
# next record comes from the statement's snapshot, so one that a dispatch committed while this
# waited for a lock is not seen: the caller then gets `catch_up`, and fair_release sends it after
# the commit. %(id)s is the ended record (still WAITING in the snapshot if it ended waiting).
FINISH_CTES = """
    ended AS (
        SELECT owner_id, queue, (state_before = 'WAITING')::int AS waiting_freed,
               (state_before <> 'WAITING')::int AS slot_freed
          FROM written
         WHERE fair_share AND owner_id IS NOT NULL
    ), next AS (
        SELECT record.id FROM jobs_taskrecord AS record, ended
         WHERE record.owner_id = ended.owner_id AND record.queue = ended.queue AND record.state = 'WAITING'
           AND record.fair_share AND record.id <> %(id)s
      ORDER BY record.created_at
         LIMIT 1
           FOR UPDATE OF record SKIP LOCKED
    ), freed AS (
        SELECT GREATEST(lane.waiting - ended.waiting_freed, 0) AS waiting,
               GREATEST(lane.in_flight - ended.slot_freed, 0) AS in_flight, lane.cap
          FROM jobs_fairlane AS lane, ended
         WHERE lane.queue = ended.queue AND lane.owner_id = ended.owner_id
           FOR UPDATE OF lane
    ), released AS (
        UPDATE jobs_taskrecord AS record SET state = 'QUEUED', updated_at = now()
          FROM next, freed
         WHERE record.id = next.id AND freed.waiting > 0 AND freed.in_flight < freed.cap
     RETURNING record.id, record.name, record.args, record.kwargs, record.request_id
    ), lane AS (
        UPDATE jobs_fairlane AS lane
           SET waiting = freed.waiting - taken.n, in_flight = freed.in_flight + taken.n,
               pass_value = lane.pass_value + taken.n * 1.0 / lane.weight, updated_at = now()
          FROM ended, freed, (SELECT count(*) AS n FROM released) AS taken
         WHERE lane.queue = ended.queue AND lane.owner_id = ended.owner_id
     RETURNING lane.waiting, lane.in_flight, lane.cap
    )
"""
# What FINISH_CTES give back, after `written`'s columns: the lane as left, and the released record.
FINISH_COLUMNS = (
    "lane.waiting, lane.in_flight, lane.cap, "
    "released.id, released.name, released.args, released.kwargs, released.request_id"
)
FINISH_JOINS = "LEFT JOIN lane ON true LEFT JOIN released ON true"


def lane_finished(row: tuple, *, owner_id: int, queue: str) -> tuple[TaskRecord | None, bool]:
    """Read FINISH_COLUMNS of a fair record that ended: (released, catch_up).

    The released record is QUEUED and must be sent (`fair_send`) after the transaction commits;
    `catch_up` says a slot is free and work counted as waiting but none could be claimed (the
    counter drifted, or the record was committed by a dispatch while this waited for the lane's
    lock), for `fair_release` to sort out after the commit. Only the lane's own next record can
    take the slot (caps are per lane), so this is the release `fair_release` would make.
    """
    waiting, in_flight, cap, record_id, name, args, kwargs, request_id = row
    if waiting is None:  # no lane
        return None, False
    if record_id is None:  # work counted as waiting and a free slot, but no record to claim
        return None, waiting > 0 and in_flight < cap
    args, kwargs = (json.loads(v) if isinstance(v, str) else v for v in (args, kwargs))  # jsonb arrives as text
    released = TaskRecord(
        id=record_id, name=name, args=args, kwargs=kwargs, queue=queue, owner_id=owner_id, request_id=request_id
    )
    return released, False


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
