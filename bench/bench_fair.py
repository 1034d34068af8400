"""Issue 12: fair share under a burst, its cost in throughput, and what one release costs as the backlog grows.

1. A lone user's prompt while another user of the same tier (cap 2) has 10,000 waiting, against
   the same prompt on an idle system: from accepted to COMPLETED, through a real worker
   (threads, 32, offline provider). The 10,000 are written with SQL as the service would leave
   them (request PENDING, record WAITING, the lane counting them), then released as usual.
2. Throughput with fair release on and off (FAIR_SHARE_ENABLED in this process, which
   dispatches): prompts of 32 users with a cap of 2 (64 slots for 32 threads, so caps do not
   bind), timed from the first submission to the last COMPLETED with the worker running (the
   target), and, for what the worker alone pays, accepted with the worker paused and timed from
   the first message taken; rounds alternate.
3. `jobs.fairshare.fair_release` per released task with 10,000 and with 1,000,000 records
   waiting (written with SQL, 100 owners, a queue nobody consumes): flat means a ratio near 1.
4. A fair dispatch (`task_dispatch` with a cap, its lane free: sent at once) with 100,000 other
   owners' lanes in its queue against 100 (lanes are kept once made): flat means a ratio near 1.
"""

import os
import statistics
import time

from django.conf import settings
from django.db import connection
from django.test import override_settings

from bench.common import median_of, report
from bench.data import (
    bench_tier,
    bench_users,
    consumption_started,
    last_request_id,
    prompts_clean,
    queue_length,
    queue_purge,
    records_delete,
    round_wait,
)
from bench.processes import Worker, child_env
from config.celery import app as celery_app
from jobs import queues
from jobs.fairshare import fair_release
from jobs.models import FairLane, TaskRecord
from jobs.services import task_dispatch
from prompts.services import PROCESS_TASK, prompt_request_create

BACKLOG = int(os.environ.get("BENCH_FAIR_BACKLOG", "10000"))
LONE_PROMPTS = int(os.environ.get("BENCH_FAIR_LONE", "15"))
PROMPTS = int(os.environ.get("BENCH_FAIR_PROMPTS", "1000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
RELEASE_ROWS = (10_000, int(os.environ.get("BENCH_FAIR_ROWS", "1000000")))
RELEASE_BATCH = 300
RELEASE_OWNERS = 100
RELEASE_QUEUE = "bench.release"
LANES = (100, int(os.environ.get("BENCH_FAIR_LANES", "100000")))
LANES_QUEUE = "bench.lanes"
LANES_BATCH = 300
CAP = 2
QUEUE = queues.PROMPTS_NORMAL
CONCURRENCY = settings.PROMPT_WORKER_CONCURRENCY


def _seed_waiting(*, owner_ids: list[int], count: int, queue: str, with_requests: bool) -> None:
    """`count` fair-share records WAITING in `queue`, owners in turn, counted in their lanes."""
    with connection.cursor() as cursor:
        params = {"owners": owner_ids, "count": count, "queue": queue, "model": settings.AI_DEFAULT_CHAT_MODEL}
        if with_requests:
            cursor.execute(
                """
                WITH requests AS (
                    INSERT INTO prompts_promptrequest (owner_id, kind, model, prompt_text, input, status, error,
                                                       task_id, created_at)
                    SELECT (%(owners)s::bigint[])[1 + n %% cardinality(%(owners)s::bigint[])], 'chat', %(model)s,
                           'waiting prompt ' || n, '{}', 'PENDING', '', gen_random_uuid(),
                           clock_timestamp()
                      FROM generate_series(1, %(count)s) AS n
                 RETURNING id, owner_id, task_id, created_at
                )
                INSERT INTO jobs_taskrecord (id, name, owner_id, queue, args, kwargs, target_type, target_id, state,
                                             progress_message, error, sends, fair_share, worker, request_id,
                                             created_at, updated_at)
                SELECT task_id, %(task)s, owner_id, %(queue)s, jsonb_build_array(id), '{}', 'prompts.promptrequest',
                       id::text, 'WAITING', '', '', 0, true, '', '', created_at, now()
                  FROM requests
                """,
                {**params, "task": PROCESS_TASK},
            )
        else:
            cursor.execute(
                """
                INSERT INTO jobs_taskrecord (id, name, owner_id, queue, args, kwargs, target_type, target_id, state,
                                             progress_message, error, sends, fair_share, worker, request_id,
                                             created_at, updated_at)
                SELECT gen_random_uuid(), 'bench.release_noop',
                       (%(owners)s::bigint[])[1 + n %% cardinality(%(owners)s::bigint[])], %(queue)s, '[]', '{}', '',
                       '', 'WAITING', '', '', 0, true, '', '', clock_timestamp(), now()
                  FROM generate_series(1, %(count)s) AS n
                """,
                params,
            )
        cursor.execute(
            """
            INSERT INTO jobs_fairlane (queue, owner_id, waiting, in_flight, cap, weight, pass_value, updated_at)
            SELECT %(queue)s::varchar, owner_id, count(*), 0, %(cap)s, 1, 0, now()
              FROM jobs_taskrecord WHERE queue = %(queue)s::varchar AND state = 'WAITING' AND owner_id = ANY(%(owners)s)
             GROUP BY owner_id
            ON CONFLICT (queue, owner_id) DO UPDATE SET waiting = EXCLUDED.waiting
            """,
            {**params, "cap": CAP if with_requests else 1_000_000_000},
        )
        cursor.execute("ANALYZE jobs_taskrecord, jobs_fairlane")


def _lone_latencies(user: object) -> list[float]:
    """Seconds from accepted to COMPLETED of LONE_PROMPTS prompts sent one after another."""
    latencies = []
    for number in range(LONE_PROMPTS):
        request = prompt_request_create(user=user, prompt_text=f"a lone question {number}")
        round_wait(owners=[user], since_id=request.pk - 1, count=1, timeout=60)
        request.refresh_from_db()
        latencies.append((request.completed_at - request.created_at).total_seconds())
    return latencies


def _burst_rows(worker: Worker, burster: object, lone: object) -> list[dict]:
    """Idle, then behind the burst, then idle again (the idle figure is the median of both)."""
    idle = _lone_latencies(lone)
    _seed_waiting(owner_ids=[burster.pk], count=BACKLOG, queue=QUEUE, with_requests=True)
    fair_release(queue=QUEUE)
    time.sleep(1)  # the burster's tasks are running
    busy = _lone_latencies(lone)
    still_waiting = TaskRecord.objects.filter(owner=burster, state=TaskRecord.State.WAITING).count()
    worker.pause(QUEUE)
    time.sleep(1)  # the burster's last running tasks finish
    prompts_clean([burster])
    queue_purge(QUEUE)
    worker.resume(QUEUE)
    idle += _lone_latencies(lone)
    ratio = statistics.median(busy) / statistics.median(idle)
    return [
        {
            "figure": f"a lone user's prompt, accepted to COMPLETED, while another user's {BACKLOG:,} wait "
            f"({still_waiting:,} still waiting at the end) vs on an idle system before and after, "
            f"medians of {LONE_PROMPTS} and {2 * LONE_PROMPTS}",
            "unit": " ms",
            "project": statistics.median(busy) * 1000,
            "baseline": statistics.median(idle) * 1000,
            "ratio": ratio,
            "target": "<= 2",
            "ok": ratio <= 2,
        }
    ]


def _throughput_round(worker: Worker, users: list, *, fair: bool, paused: bool) -> tuple[float, float]:
    """(accepted per second, completed per second) for PROMPTS prompts with fair share on or off.

    `paused`: accepted with the worker paused, timed from the first message taken to the last
    COMPLETED (the worker's side alone). Otherwise accepted with the worker running, timed from
    the first submission to the last COMPLETED (the whole pipeline).
    """
    if paused:
        worker.pause(QUEUE)
    since = last_request_id()
    with override_settings(FAIR_SHARE_ENABLED=fair):
        submitted = time.time()
        started = time.perf_counter()
        for number in range(PROMPTS):
            prompt_request_create(user=users[number % len(users)], prompt_text=f"throughput {number}")
        accepted = PROMPTS / (time.perf_counter() - started)
        began = submitted
        if paused:
            worker.resume(QUEUE)
            began = consumption_started(QUEUE, waiting=queue_length(QUEUE))
        last = round_wait(owners=users, since_id=since, count=PROMPTS, timeout=PROMPTS / 5 + 60)
    prompts_clean(users)
    return accepted, PROMPTS / (last.timestamp() - began)


def _throughput_rows(worker: Worker, users: list) -> list[dict]:
    """Both ways of timing, rounds alternating on and off.

    The target is on the whole pipeline. With fair share off every message is sent by the
    accepting process; with it on, most are sent by the worker, as running work finishes: timed
    from the first message taken, the worker's side carries the sends of one mode and not of the
    other, so that figure is shown for what the worker pays, without a target.
    """
    rounds: dict[tuple[bool, bool], list[tuple[float, float]]] = {}
    for _ in range(RUNS):
        for paused in (False, True):
            for fair in (True, False):
                rounds.setdefault((paused, fair), []).append(_throughput_round(worker, users, fair=fair, paused=paused))
    prefix = f"{PROMPTS:,} prompts of {len(users)} users (cap {CAP}, {len(users) * CAP} slots)"
    rows = []
    for paused, index, label, unit in (
        (True, 0, "accepted through the service (worker paused)", " /s"),
        (False, 1, "submitted to the last COMPLETED, worker running", " tasks/s"),
        (True, 1, "first message taken to the last COMPLETED (accepted with the worker paused)", " tasks/s"),
    ):
        mine = median_of([r[index] for r in rounds[(paused, True)]])
        plain = median_of([r[index] for r in rounds[(paused, False)]])
        row = {"figure": f"{prefix}, {label}, fair release on vs off", "unit": unit, "project": mine,
               "baseline": plain, "ratio": mine / plain}  # fmt: skip
        if (paused, index) == (False, 1):
            row.update(target=">= 0.90", ok=mine / plain >= 0.9)
        rows.append(row)
    return rows


def _release_cost() -> float:
    """Seconds per released task, median of five batches of RELEASE_BATCH."""
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        released = fair_release(queue=RELEASE_QUEUE, most=RELEASE_BATCH)
        timings.append((time.perf_counter() - started) / max(1, released))
    return statistics.median(timings)


def _release_rows(owners: list) -> list[dict]:
    owner_ids = [owner.pk for owner in owners]
    _release_clean()
    costs = []
    try:
        seeded = 0
        for rows in RELEASE_ROWS:
            _seed_waiting(owner_ids=owner_ids, count=rows - seeded, queue=RELEASE_QUEUE, with_requests=False)
            seeded = rows
            costs.append(_release_cost())
    finally:
        _release_clean()
    figure = (
        f"fair_release per task, {RELEASE_ROWS[1]:,} vs {RELEASE_ROWS[0]:,} records waiting "
        f"({RELEASE_OWNERS} owners, batches of {RELEASE_BATCH})"
    )
    return [_flat_row(figure, costs)]


def _flat_row(figure: str, costs: list[float]) -> dict:
    """A cost in seconds at the larger size (`costs[1]`) against the smaller one: flat is near 1."""
    ratio = costs[1] / costs[0]
    return {
        "figure": figure,
        "unit": " ms",
        "project": costs[1] * 1000,
        "baseline": costs[0] * 1000,
        "ratio": ratio,
        "target": "<= 1.25 (flat)",
        "ok": ratio <= 1.25,
    }


def _release_clean() -> None:
    released = TaskRecord.objects.filter(queue=RELEASE_QUEUE).exclude(state=TaskRecord.State.WAITING)
    records_delete([str(pk) for pk in released.values_list("pk", flat=True)])
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM jobs_taskrecord WHERE queue = %s", [RELEASE_QUEUE])
    FairLane.objects.filter(queue=RELEASE_QUEUE).delete()
    queue_purge(RELEASE_QUEUE)


def _lane_owners(count: int) -> None:
    """`count` users to own idle lanes (created once, reused), seeded by one statement."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM users_user WHERE username LIKE %s", ["b-lanes-%"])
        have = cursor.fetchone()[0]
        cursor.execute(
            """
            INSERT INTO users_user (password, is_superuser, username, first_name, last_name, email, is_staff,
                                    is_active, date_joined, tier_id, tier_pinned, requests_today, tokens_today)
            SELECT '!', false, 'b-lanes-' || n, '', '', '', false, true, now(), NULL, false, 0, 0
              FROM generate_series(%s + 1, %s) AS n
            """,
            [have, count],
        )


def _dispatch_cost(owner: object) -> float:
    """Seconds per fair dispatch of `owner` (its lane has a free slot: sent at once), median of five batches."""
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(LANES_BATCH):
            task_dispatch(name="bench.lanes_noop", queue=LANES_QUEUE, owner=owner, max_in_flight=1_000_000_000)
        timings.append((time.perf_counter() - started) / LANES_BATCH)
    return statistics.median(timings)


def _lanes_rows(tier: object) -> list[dict]:
    """A fair dispatch reads the front of the round (the lowest pass among lanes with work waiting);
    every owner who ever dispatched keeps a lane, so its cost must not grow with their number."""
    (owner,) = bench_users("b-lanes-owner", 1, tier)
    _lane_owners(LANES[1])
    costs = []
    try:
        for lanes in LANES:
            with connection.cursor() as cursor:  # one lane in a hundred with work waiting
                cursor.execute(
                    """
                    INSERT INTO jobs_fairlane (queue, owner_id, waiting, in_flight, cap, weight, pass_value, updated_at)
                    SELECT %s, id, (id %% 100 = 0)::int, 0, 1, 1, id, now()
                      FROM (SELECT id FROM users_user WHERE username LIKE 'b-lanes-%%' ORDER BY id LIMIT %s) AS owners
                    ON CONFLICT (queue, owner_id) DO NOTHING
                    """,
                    [LANES_QUEUE, lanes],
                )
                cursor.execute("ANALYZE jobs_fairlane")
            costs.append(_dispatch_cost(owner))
    finally:
        records_delete([str(pk) for pk in TaskRecord.objects.filter(queue=LANES_QUEUE).values_list("pk", flat=True)])
        FairLane.objects.filter(queue=LANES_QUEUE).delete()
        queue_purge(LANES_QUEUE)
    return [
        _flat_row(f"a fair dispatch, {LANES[1]:,} vs {LANES[0]:,} owners' lanes in its queue (1 in 100 waiting)", costs)
    ]


def run() -> None:
    tier = bench_tier("b-fair", max_in_flight=CAP)
    users = bench_users("b-fair", 2 * CONCURRENCY // CAP, tier)
    burster, lone = bench_users("b-fair-burst", 2, tier)
    owners = bench_users("b-fair-release", RELEASE_OWNERS, tier)
    prompts_clean([*users, burster, lone])
    worker = Worker(app=celery_app, queues=queues.PROMPT_QUEUES, concurrency=CONCURRENCY, env=child_env(), name="fair")
    try:
        rows = _burst_rows(worker, burster, lone)
        prompts_clean([lone])
        rows += _throughput_rows(worker, users)
    finally:
        worker.stop()
        prompts_clean([*users, burster, lone])
        queue_purge(*queues.PROMPT_QUEUES)
    rows += _release_rows(owners)
    rows += _lanes_rows(tier)
    report("fair", rows)
