"""Tier priority: when the workers are busy, premium work is taken before earlier normal work."""

import uuid

import pytest
from celery import current_app as celery_app

from conftest import WorkerProcess, wait_until
from jobs import queues
from jobs.models import TaskRecord
from prompts.models import PromptRequest


@pytest.fixture
def single_slot_prompt_worker(worker):
    """The session worker stops taking prompts; one worker with one slot takes them instead."""
    for queue in queues.PROMPT_QUEUES:
        celery_app.control.cancel_consumer(queue, destination=[worker.node_name], reply=True)
    single = WorkerProcess(worker.env, worker.log_path)
    single.start(name="single", concurrency=1, consume=queues.PROMPT_QUEUES)
    yield single
    single.stop()
    for queue in queues.PROMPT_QUEUES:
        celery_app.control.add_consumer(queue, destination=[worker.node_name], reply=True)


def test_premium_prompt_is_taken_before_earlier_normal_prompts(single_slot_prompt_worker, make_user, client_for):
    pro, premium = client_for(make_user(tier="pro")), client_for(make_user(tier="premium"))
    tag = uuid.uuid4().hex[:8]

    def post(client, text):
        response = client.post("/api/v1/prompts/", {"prompt_text": f"{text} {tag}"}, format="json")
        assert response.status_code == 202
        return response.json()

    # The blocker comes from the high queue: a round-robin consumer would next look at the normal
    # queue first, so only priority order makes the premium prompt win below.
    blocker = post(premium, "#delay=1.5 keeps the only slot busy")
    wait_until(lambda: TaskRecord.objects.get(pk=blocker["task_id"]).state == "STARTED", what="the blocker to start")
    normal = [post(pro, f"normal {i}") for i in range(3)]
    urgent = post(premium, "premium")

    ids = [blocker["id"], urgent["id"]] + [n["id"] for n in normal]
    wait_until(
        lambda: PromptRequest.objects.filter(pk__in=ids, status="COMPLETED").count() == len(ids),
        timeout=30,
        what="all prompts to complete",
    )
    started = dict(PromptRequest.objects.filter(pk__in=ids).values_list("pk", "started_at"))
    assert TaskRecord.objects.get(pk=urgent["task_id"]).queue == "prompts.high"
    assert TaskRecord.objects.get(pk=normal[0]["task_id"]).queue == "prompts.normal"
    assert all(started[urgent["id"]] < started[n["id"]] for n in normal)
