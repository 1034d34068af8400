"""Fault tests: break the real servers on purpose and check that nothing accepted is lost."""

import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from config import embedded
from conftest import wait_until
from jobs.models import TaskRecord
from jobs.services import task_records_sweep
from prompts.models import PromptRequest


def test_broker_down_at_post_time_accepts_and_completes_once_it_returns(
    worker, make_user, client_for, client, settings
):
    if not settings.USES_EMBEDDED_SERVERS:
        pytest.skip("stops and starts the embedded Redis")
    api = client_for(make_user())
    text = f"written while the broker is down {uuid.uuid4().hex}"

    embedded.valkey_stop(settings.EMBEDDED_DIR)
    try:
        started = time.monotonic()
        response = api.post("/api/v1/prompts/", {"prompt_text": text}, format="json")
        elapsed = time.monotonic() - started
        health = client.get("/api/v1/health/")
    finally:
        embedded.valkey_start(settings.EMBEDDED_DIR, durable=False)

    assert response.status_code == 202
    assert elapsed < 10, "accepting must not hang on a dead broker"
    assert health.status_code == 503 and not health.json()["broker"]["ok"]
    accepted = response.json()
    record = TaskRecord.objects.get(pk=accepted["task_id"])
    assert record.state == "WAITING" and record.sends == 0
    assert PromptRequest.objects.get(pk=accepted["id"]).status == "PENDING"

    settings.JOBS_RESEND_AFTER_SECONDS = 0
    # The sweep sends it, unless another task finishing in the same queue released it first.
    assert task_records_sweep()["resent"] <= 1

    def completed():
        return api.get(f"/api/v1/prompts/{accepted['id']}/").json()["status"] == "COMPLETED"

    wait_until(completed, timeout=60, what="the swept prompt to complete")
    assert TaskRecord.objects.get(pk=accepted["task_id"]).sends == 1


def test_worker_killed_with_sigkill_mid_task_loses_nothing_and_answers_once(worker, make_user, client_for, settings):
    """100 slow prompts in flight, the worker killed: a new worker and the sweeper finish all of them."""
    from celery import current_app as celery_app

    from conftest import WorkerProcess
    from jobs import queues
    from prompts.models import PromptResponse
    from users.models import Tier

    user = make_user()
    user.tier = Tier.objects.create(slug=f"wide-{uuid.uuid4().hex[:6]}", name="Wide", daily_request_limit=1000,
                                    max_in_flight=100)  # fmt: skip
    user.save(update_fields=["tier"])
    client = client_for(user)
    for queue in queues.PROMPT_QUEUES:  # only the worker we kill takes prompts
        celery_app.control.cancel_consumer(queue, destination=[worker.node_name], reply=True)
    doomed = WorkerProcess(worker.env, worker.log_path)
    replacement = WorkerProcess(worker.env, worker.log_path)
    try:
        tag = uuid.uuid4().hex[:8]
        ids = [client.post("/api/v1/prompts/", {"prompt_text": f"#delay=1 kill {i} {tag}"}, format="json").json()["id"]
               for i in range(100)]  # fmt: skip
        # Started once all 100 wait in the queue: on a loaded machine the POSTs are slower than
        # the worker, and work taken as it arrives would never be ten in flight at once.
        doomed.start(name="doomed", concurrency=16, consume=queues.PROMPT_QUEUES)
        wait_until(lambda: PromptRequest.objects.filter(pk__in=ids, status="IN_PROGRESS").count() >= 10,
                   timeout=60, what="work in flight")  # fmt: skip
        doomed.process.kill()  # SIGKILL: no warm shutdown, nothing acknowledged or given back
        doomed.process.wait()
        replacement.start(name="replacement", concurrency=16, consume=queues.PROMPT_QUEUES)
        settings.JOBS_WORKER_HEARTBEAT_SECONDS = 1

        def all_done() -> bool:
            task_records_sweep()  # what beat runs every minute
            return PromptRequest.objects.filter(pk__in=ids, status="COMPLETED").count() == 100

        try:
            wait_until(all_done, timeout=150, interval=1, what="all 100 prompts to complete")
        except pytest.fail.Exception:
            from django.db.models import Count

            from jobs.models import TaskRecord

            requests = PromptRequest.objects.filter(pk__in=ids).values("status").annotate(n=Count("id"))
            records = TaskRecord.objects.filter(owner=user).exclude(state="SUCCESS")
            from django.utils import timezone as tz

            from jobs.events import events_redis
            from jobs.heartbeat import WORKERS_KEY, worker_alive
            from jobs.services import _orphaned

            extra = [(r.worker, worker_alive(r.worker), events_redis().hget(WORKERS_KEY, r.worker)) for r in records]
            pytest.fail(f"requests: {list(requests)}; unfinished records: "
                        f"{list(records.values('state', 'worker', 'sends', 'updated_at'))} {extra} "
                        f"orphaned={_orphaned(tz.now())} now={tz.now()}")  # fmt: skip
        assert PromptResponse.objects.filter(request_id__in=ids).count() == 100
    finally:
        doomed.stop()  # in case the test failed before killing it
        replacement.stop()
        for queue in queues.PROMPT_QUEUES:
            celery_app.control.add_consumer(queue, destination=[worker.node_name], reply=True)


def test_a_thousand_creates_under_load_never_run_before_their_commit(worker, make_user):
    """Four threads create 1,000 prompts while the worker runs them: none is missing or stuck."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from prompts.services import prompt_request_create
    from users.models import Tier

    tier = Tier.objects.create(slug=f"load-{uuid.uuid4().hex[:6]}", name="Load", daily_request_limit=100_000,
                               max_in_flight=100)  # fmt: skip
    users = [make_user() for _ in range(4)]
    for user in users:
        user.tier = tier
        user.save(update_fields=["tier"])
    log_before = len(worker.log())
    tag = uuid.uuid4().hex[:8]

    def create(user) -> list[int]:
        try:
            return [prompt_request_create(user=user, prompt_text=f"load {n} {tag}").pk for n in range(250)]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = [pk for batch in pool.map(create, users) for pk in batch]

    assert len(ids) == 1000
    wait_until(lambda: PromptRequest.objects.filter(pk__in=ids, status="COMPLETED").count() == 1000,
               timeout=180, interval=1, what="1,000 prompts to complete")  # fmt: skip
    new_log = worker.log()[log_before:]
    assert "DoesNotExist" not in new_log
    assert not PromptRequest.objects.filter(pk__in=ids).exclude(status="COMPLETED").exists()


def test_postgres_restart_while_workers_run_completes_every_request_once(
    worker, make_user, client_for, openai_server, settings
):
    """PostgreSQL goes away for a few seconds under running prompts: each one still ends COMPLETED once."""
    from django.db import connection

    from prompts.models import PromptResponse
    from users.models import Tier

    if not settings.USES_EMBEDDED_SERVERS:
        pytest.skip("stops and starts the embedded PostgreSQL")
    user = make_user()
    user.tier = Tier.objects.create(slug=f"pg-{uuid.uuid4().hex[:6]}", name="PG", daily_request_limit=1000,
                                    max_in_flight=100)  # fmt: skip
    user.save(update_fields=["tier"])
    api = client_for(user)
    tag = uuid.uuid4().hex[:8]
    ids = [api.post("/api/v1/prompts/", {"prompt_text": f"#delay=1.5 pg {i} {tag}"}, format="json").json()["id"]
           for i in range(24)]  # fmt: skip
    wait_until(lambda: PromptRequest.objects.filter(pk__in=ids, status="IN_PROGRESS").count() >= 8,
               timeout=30, what="work in flight")  # fmt: skip

    connection.close()
    embedded.postgres_stop(settings.EMBEDDED_DIR)
    try:
        time.sleep(3)  # down while provider calls return and queued work is taken
    finally:
        embedded.postgres_start(settings.EMBEDDED_DIR, durable=False)
    connection.close()  # ours died with the server; the next query opens a new one

    started = time.monotonic()
    wait_until(lambda: PromptRequest.objects.filter(pk__in=ids, status="COMPLETED").count() == len(ids),
               timeout=45, interval=0.5, what="every prompt to complete after the restart")  # fmt: skip
    assert time.monotonic() - started < 45
    assert PromptResponse.objects.filter(request_id__in=ids).count() == len(ids)
    records = TaskRecord.objects.filter(owner=user)
    wait_until(lambda: not records.exclude(state="SUCCESS").exists(), timeout=15, what="every task record to end")
    assert all(openai_server.calls_for(f"pg {i} {tag}") >= 1 for i in range(len(ids)))

    # The worker serves new work as before, and its handlers found their connections again.
    log_before = len(worker.log())
    after = api.post("/api/v1/prompts/", {"prompt_text": f"after the restart {tag}"}, format="json").json()
    wait_until(lambda: PromptRequest.objects.get(pk=after["id"]).status == "COMPLETED", timeout=20,
               what="a prompt sent after the restart")  # fmt: skip
    assert "ERROR" not in worker.log()[log_before:]
    assert TaskRecord.objects.get(pk=after["task_id"]).state == "SUCCESS"


# A pool child killed mid-task ---------------------------------------------------------------
# Prompt workers use threads, which have no children: these tests run their own prefork worker
# on the prompt queues (the shared worker stops taking prompts meanwhile).


@pytest.fixture
def prefork_worker(worker) -> Iterator:
    from celery import current_app as celery_app

    from conftest import WorkerProcess
    from jobs import queues

    for queue in queues.PROMPT_QUEUES:
        celery_app.control.cancel_consumer(queue, destination=[worker.node_name], reply=True)
    # A provider call of a few seconds, so that there is time to kill the child under it.
    prefork = WorkerProcess({**worker.env, "AI_TIMEOUT_SECONDS": "10"}, worker.log_path)
    try:
        prefork.start(name="prefork", concurrency=2, consume=queues.PROMPT_QUEUES, pool="prefork")
        yield prefork
    finally:
        prefork.stop()
        for queue in queues.PROMPT_QUEUES:
            celery_app.control.add_consumer(queue, destination=[worker.node_name], reply=True)


def _child_running(node_name: str, task_id: str) -> int | None:
    """The pid of the pool child running `task_id`, as the worker reports its active tasks."""
    from celery import current_app as celery_app

    replies = celery_app.control.inspect(destination=[node_name], timeout=2).active() or {}
    for task in replies.get(node_name, []):
        if task["id"] == task_id and task.get("worker_pid"):
            return task["worker_pid"]
    return None


def _prompt_completes(api, text: str) -> None:
    accepted = api.post("/api/v1/prompts/", {"prompt_text": text}, format="json").json()
    wait_until(lambda: PromptRequest.objects.get(pk=accepted["id"]).status == "COMPLETED", timeout=30,
               what=f"prompt {text!r} to complete")  # fmt: skip


def test_a_pool_child_killed_mid_task_runs_it_once_more_and_the_worker_keeps_serving(
    prefork_worker, make_user, client_for, openai_server
):
    from prompts.models import PromptResponse

    api = client_for(make_user())
    marker = f"child {uuid.uuid4().hex[:8]}"
    accepted = api.post("/api/v1/prompts/", {"prompt_text": f"#delay=3 {marker}"}, format="json").json()
    child = wait_until(lambda: _child_running(prefork_worker.node_name, accepted["task_id"]), timeout=30,
                       interval=0.2, what="a pool child to run the prompt")  # fmt: skip
    wait_until(lambda: openai_server.calls_for(marker) == 1, what="the provider call under way")

    os.kill(child, signal.SIGKILL)  # only the child: the worker's parent process lives on

    ended = PromptRequest.objects.filter(pk=accepted["id"], status__in=["COMPLETED", "FAILED"])
    final = wait_until(ended.first, timeout=40, interval=0.2, what="the prompt to end after its child was killed")
    assert final.status == "COMPLETED", final.error
    assert PromptResponse.objects.filter(request_id=accepted["id"]).count() == 1
    record = wait_until(lambda: TaskRecord.objects.filter(pk=accepted["task_id"], state="SUCCESS").first(),
                        what="the task record to end SUCCESS")  # fmt: skip
    assert record.started_at is not None
    time.sleep(3)  # longer than the retry delay: a loop would have delivered it again by now
    assert openai_server.calls_for(marker) == 2  # the killed run and one run again, no more
    assert prefork_worker.process.poll() is None
    _prompt_completes(api, f"after a lost child {marker}")


def test_a_task_whose_pool_child_dies_every_time_ends_failed_with_the_reason(
    prefork_worker, make_user, client_for, openai_server, settings
):
    from prompts.tasks import process_prompt_request

    api = client_for(make_user())
    marker = f"poison {uuid.uuid4().hex[:8]}"
    accepted = api.post("/api/v1/prompts/", {"prompt_text": f"#delay=3 {marker}"}, format="json").json()
    killed: set[int] = set()

    def kill_each_run() -> PromptRequest | None:
        request = PromptRequest.objects.filter(pk=accepted["id"], status__in=["COMPLETED", "FAILED"]).first()
        if request is None:
            child = _child_running(prefork_worker.node_name, accepted["task_id"])
            if child and child not in killed:
                os.kill(child, signal.SIGKILL)  # as a task that runs its child out of memory would
                killed.add(child)
        return request

    request = wait_until(kill_each_run, timeout=50, interval=0.1, what="the poisoned prompt to end")

    assert request.status == "FAILED"
    assert "worker process running this task was lost" in request.error
    runs = process_prompt_request.max_retries + 1
    assert len(killed) == runs
    assert TaskRecord.objects.get(pk=accepted["task_id"]).state == "FAILURE"
    calls = openai_server.calls_for(marker)
    assert calls <= runs
    time.sleep(4)  # longer than the retry delay: nothing is delivered again
    assert openai_server.calls_for(marker) == calls
    assert _child_running(prefork_worker.node_name, accepted["task_id"]) is None
    assert prefork_worker.process.poll() is None
    _prompt_completes(api, f"after the poisoned one {marker}")
