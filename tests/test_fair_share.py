"""Fair share: one user's burst does not starve another user, and caps hold under load."""

import time
import uuid
from datetime import datetime

import pytest
from django.db import transaction

from conftest import wait_until
from jobs.models import FairLane, TaskRecord
from jobs.sending import sent_noted
from prompts.models import PromptRequest
from prompts.services import prompt_request_create
from users.models import Tier


@pytest.fixture
def burst_tier(db):
    return Tier.objects.create(
        slug=f"burst-{uuid.uuid4().hex[:6]}", name="Burst", daily_request_limit=10_000, max_in_flight=8
    )


def users_in(tier, make_user, count):
    users = [make_user() for _ in range(count)]
    for user in users:
        user.tier = tier
        user.save(update_fields=["tier"])
    return users


def submit(client, text):
    response = client.post("/api/v1/prompts/", {"prompt_text": text}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def run_burst_then_single(make_user, client_for, tier):
    """A sends 300 slow prompts, then B sends one; returns (A's completion times sorted, B's)."""
    heavy, light = users_in(tier, make_user, 2)
    tag = uuid.uuid4().hex[:8]
    light_client = client_for(light)
    # The burst is accepted at once (one transaction), so it is all waiting before any of it runs,
    # however slowly this machine posts requests.
    with transaction.atomic():
        burst = [prompt_request_create(user=heavy, prompt_text=f"#delay=0.3 burst {i} {tag}").pk for i in range(300)]
    single = submit(light_client, f"#delay=0.3 single {tag}")["id"]
    wait_until(
        lambda: PromptRequest.objects.filter(pk__in=[*burst, single], status="COMPLETED").count() == 301,
        timeout=120,
        interval=0.5,
        what="all 301 prompts",
    )
    done = dict(PromptRequest.objects.filter(pk__in=[*burst, single]).values_list("pk", "completed_at"))
    return sorted(done[pk] for pk in burst), done[single]


def test_a_burst_of_300_does_not_make_another_users_prompt_wait(worker, make_user, client_for, burst_tier):
    heavy_done, single_done = run_burst_then_single(make_user, client_for, burst_tier)

    assert single_done < heavy_done[-30], "B's prompt should run within about one round, not behind the burst"


def test_without_fair_share_the_same_burst_makes_the_other_user_wait(
    worker, make_user, client_for, burst_tier, settings
):
    settings.FAIR_SHARE_ENABLED = False  # the web side dispatches straight to the broker

    heavy_done, single_done = run_burst_then_single(make_user, client_for, burst_tier)

    assert single_done > heavy_done[-30], "without the feature B waits behind A's burst (so the test proves it)"


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in points:
        running += change
        peak = max(peak, running)
    return peak


def test_the_in_flight_cap_holds_when_many_finish_at_once(worker, make_user, client_for, burst_tier):
    Tier.objects.filter(pk=burst_tier.pk).update(max_in_flight=2)
    (user,) = users_in(burst_tier, make_user, 1)
    client = client_for(user)
    tag = uuid.uuid4().hex[:8]

    ids = [submit(client, f"quick {i} {tag}")["id"] for i in range(50)]
    waiting = TaskRecord.objects.filter(owner=user, state="WAITING").order_by("created_at").last()

    assert waiting is not None and client.get(f"/api/v1/tasks/{waiting.pk}/").json()["position"] > 1
    wait_until(
        lambda: PromptRequest.objects.filter(pk__in=ids, status="COMPLETED").count() == 50,
        timeout=60,
        what="50 prompts",
    )
    wait_until(  # the records' final state is written just after the requests' (postrun)
        lambda: TaskRecord.objects.filter(owner=user, state="SUCCESS").count() == 50, what="50 task records"
    )
    intervals = list(TaskRecord.objects.filter(owner=user).values_list("started_at", "finished_at"))
    assert len(intervals) == 50
    assert max_overlap(intervals) <= 2
    lane = FairLane.objects.get(owner=user)
    assert (lane.waiting, lane.in_flight) == (0, 0)
    # Each was sent once: the 48 released by finishing ones had their send noted in Redis, then on
    # the record when they started, which also deleted the Redis notes.
    sends = TaskRecord.objects.filter(owner=user).values_list("sends", "sent_at")
    assert all(count == 1 and sent_at is not None for count, sent_at in sends), list(sends)
    assert sent_noted(list(TaskRecord.objects.filter(owner=user).values_list("pk", flat=True))) == set()


def test_a_cancelled_waiting_request_gives_its_place_back(db, make_user, client_for, burst_tier):
    Tier.objects.filter(pk=burst_tier.pk).update(max_in_flight=1)
    (user,) = users_in(burst_tier, make_user, 1)
    client = client_for(user)
    first, second = submit(client, "one"), submit(client, "two")  # no worker: the second waits

    assert TaskRecord.objects.get(pk=second["task_id"]).state == "WAITING"
    assert client.post(f"/api/v1/prompts/{second['id']}/cancel/").status_code == 200

    lane = FairLane.objects.get(owner=user)
    assert (lane.waiting, lane.in_flight) == (0, 1)
    assert TaskRecord.objects.get(pk=first["task_id"]).state == "QUEUED"


def test_a_worker_killed_mid_task_frees_its_users_slot_within_bounded_time(
    worker, make_user, client_for, burst_tier, settings
):
    """Cap 1: the running prompt dies with its worker; the sweeper resends it and the next one follows."""
    from celery import current_app as celery_app

    from conftest import WorkerProcess
    from jobs import queues
    from jobs.services import task_records_sweep

    Tier.objects.filter(pk=burst_tier.pk).update(max_in_flight=1)
    (user,) = users_in(burst_tier, make_user, 1)
    client = client_for(user)
    for queue in queues.PROMPT_QUEUES:  # only the worker we kill takes prompts
        celery_app.control.cancel_consumer(queue, destination=[worker.node_name], reply=True)
    doomed = WorkerProcess(worker.env, worker.log_path)
    doomed.start(name="doomed-lane", concurrency=2, consume=queues.PROMPT_QUEUES)
    replacement = WorkerProcess(worker.env, worker.log_path)
    try:
        tag = uuid.uuid4().hex[:8]
        first = submit(client, f"#delay=1.5 first {tag}")  # under the 2 s client timeout
        second = submit(client, f"#delay=0.1 second {tag}")
        wait_until(
            lambda: PromptRequest.objects.filter(pk=first["id"], status="IN_PROGRESS").exists(),
            timeout=30,
            what="the first prompt to run",
        )
        assert TaskRecord.objects.get(pk=second["task_id"]).state == "WAITING"  # the cap holds it back
        doomed.process.kill()  # SIGKILL mid-task: its slot is taken by a task nobody runs any more
        doomed.process.wait()
        killed_at = time.monotonic()
        replacement.start(name="replacement-lane", concurrency=2, consume=queues.PROMPT_QUEUES)
        settings.JOBS_WORKER_HEARTBEAT_SECONDS = 1

        def both_done() -> bool:
            task_records_sweep()  # what beat runs every minute
            return PromptRequest.objects.filter(pk__in=[first["id"], second["id"]], status="COMPLETED").count() == 2

        wait_until(both_done, timeout=90, interval=1, what="both prompts after the kill")
        assert time.monotonic() - killed_at < 90
        assert TaskRecord.objects.get(pk=first["task_id"]).sends == 2, "the killed run was sent again by the sweeper"
        wait_until(lambda: (lane := FairLane.objects.get(owner=user)).in_flight == 0 and lane, what="the slot back")
        assert FairLane.objects.get(owner=user).waiting == 0
    finally:
        doomed.stop()
        replacement.stop()
        for queue in queues.PROMPT_QUEUES:
            celery_app.control.add_consumer(queue, destination=[worker.node_name], reply=True)
