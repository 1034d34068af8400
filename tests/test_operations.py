"""Operations: the task-management API, periodic jobs, cleanup, revocation and the sweeper."""

import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from celery import current_app as celery_app
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from conftest import BASE_DIR, wait_until
from jobs import queues
from jobs.models import TaskRecord
from jobs.schedules import REGISTRY
from jobs.services import task_records_sweep
from prompts.models import PromptRequest, PromptResponse
from prompts.services import prompt_request_create
from users.models import UsageDaily, User

SPEC_JOBS = {
    "reset-daily-limits", "cleanup-cache", "sweep-task-records", "cleanup-task-records",
    "expire-task-results", "calculate-tiers",
}  # fmt: skip


def wait_record(task_id: str, states=("SUCCESS", "FAILURE", "REVOKED"), timeout: float = 20) -> TaskRecord:
    return wait_until(
        lambda: TaskRecord.objects.filter(pk=task_id, state__in=states).first(), timeout=timeout, what=f"task {task_id}"
    )


def trigger(client, job: str) -> TaskRecord:
    response = client.post(f"/api/v1/tasks/trigger/{job}/")
    assert response.status_code == 202, response.content
    return wait_record(response.json()["task_id"])


def test_every_periodic_job_exists_after_migrate_with_its_queue(db):
    rows = {task.name: task for task in PeriodicTask.objects.all()}

    assert set(rows) >= SPEC_JOBS
    for slug in SPEC_JOBS:
        assert rows[slug].task == REGISTRY[slug].task
        assert rows[slug].queue == REGISTRY[slug].queue
        assert rows[slug].enabled
    assert rows["reset-daily-limits"].crontab.hour == "0" and rows["reset-daily-limits"].crontab.minute == "0"
    assert rows["sweep-task-records"].interval.every == 60


def test_an_operators_schedule_edit_survives_setup_running_again(db):
    task = PeriodicTask.objects.get(name="reset-daily-limits")
    task.crontab = CrontabSchedule.objects.create(minute="30", hour="1", timezone="UTC")
    task.enabled = False
    task.save()
    PeriodicTask.objects.filter(name="cleanup-cache").delete()

    call_command("setup_periodic_jobs")  # what `make run` does at every start

    task = PeriodicTask.objects.get(name="reset-daily-limits")
    assert (task.crontab.hour, task.crontab.minute, task.enabled) == ("1", "30", False)
    assert PeriodicTask.objects.filter(name="cleanup-cache").exists()  # a deleted job comes back


@pytest.mark.parametrize("job", sorted(SPEC_JOBS))
def test_each_periodic_job_runs_through_a_real_worker_when_triggered(worker, make_user, client_for, job):
    record = trigger(client_for(make_user(staff=True)), job)

    assert record.state == "SUCCESS", record.error
    assert record.queue == queues.MAINTENANCE


def test_triggered_jobs_do_what_they_say(worker, make_user, client_for):
    staff = client_for(make_user(staff=True))
    busy = make_user()
    User.objects.filter(pk=busy.pk).update(requests_today=40, usage_date=timezone.localdate())
    UsageDaily.objects.create(user=busy, date=timezone.localdate(), requests=600)
    old = timezone.now() - timedelta(days=60)
    stale_failure = TaskRecord.objects.create(name="x", queue="q", state="FAILURE", finished_at=old)
    fresh_failure = TaskRecord.objects.create(name="x", queue="q", state="FAILURE", finished_at=timezone.now())
    TaskResult.objects.create(task_id=str(uuid.uuid4()), status="SUCCESS", date_done=old)
    kept_result = TaskResult.objects.create(task_id=str(uuid.uuid4()), status="SUCCESS")

    trigger(staff, "reset-daily-limits")
    trigger(staff, "calculate-tiers")
    trigger(staff, "cleanup-task-records")
    trigger(staff, "expire-task-results")

    busy = User.objects.get(pk=busy.pk)
    assert busy.requests_today == 0
    assert busy.tier.slug == "pro"
    assert not TaskRecord.objects.filter(pk=stale_failure.pk).exists()
    assert TaskRecord.objects.filter(pk=fresh_failure.pk).exists()
    assert list(TaskResult.objects.values_list("pk", flat=True)) == [kept_result.pk] or (
        TaskResult.objects.filter(pk=kept_result.pk).exists() and not TaskResult.objects.filter(date_done=old).exists()
    )


def test_clean_cache_removes_idle_keys_without_expiry_only(worker, make_user, client_for):
    cache.set("ops-test:forever", "x", timeout=None)
    cache.set("ops-test:expiring", "x", timeout=600)
    time.sleep(1.2)  # the test worker treats keys idle over 0 seconds as stale

    trigger(client_for(make_user(staff=True)), "cleanup-cache")

    assert cache.get("ops-test:forever") is None
    assert cache.get("ops-test:expiring") == "x"


def test_staff_only_endpoints_answer_403_to_others_and_unknown_ids_404(db, make_user, client_for):
    user = client_for(make_user())
    staff = client_for(make_user(staff=True))

    for path in ["/api/v1/tasks/active/", "/api/v1/tasks/workers/"]:
        assert user.get(path).status_code == 403
    assert user.post("/api/v1/tasks/trigger/reset-daily-limits/").status_code == 403
    assert staff.post("/api/v1/tasks/trigger/no-such-job/").status_code == 404
    assert user.get(f"/api/v1/tasks/{uuid.uuid4()}/").status_code == 404
    assert user.post(f"/api/v1/tasks/{uuid.uuid4()}/revoke/").status_code == 404


def test_active_and_workers_show_the_live_worker_and_its_queues(worker, make_user, client_for):
    staff = client_for(make_user(staff=True))

    workers = staff.get("/api/v1/tasks/workers/").json()
    active = staff.get("/api/v1/tasks/active/").json()

    names = [w["name"] for w in workers["workers"]]
    assert worker.node_name in names
    mine = next(w for w in workers["workers"] if w["name"] == worker.node_name)
    assert set(mine["queues"]) == set(queues.ALL_QUEUES)
    assert mine["pool"] and mine["concurrency"] == 16
    assert set(workers["queues"]) == set(queues.ALL_QUEUES)
    assert set(active) == {"active", "reserved", "scheduled"}


def test_task_list_is_scoped_and_filters_by_state_and_name(db, make_user, client_for):
    owner, other = make_user(), make_user()
    TaskRecord.objects.create(name="a.task", queue="q", owner=owner, state="SUCCESS")
    TaskRecord.objects.create(name="b.task", queue="q", owner=owner, state="FAILURE")
    TaskRecord.objects.create(name="a.task", queue="q", owner=other, state="SUCCESS")
    client = client_for(owner)

    assert client.get("/api/v1/tasks/").json()["count"] == 2
    assert client.get("/api/v1/tasks/?state=FAILURE").json()["count"] == 1
    assert client.get("/api/v1/tasks/?name=a.task").json()["count"] == 1
    assert client.get("/api/v1/tasks/?state=BOGUS").status_code == 400
    assert client_for(make_user(staff=True)).get("/api/v1/tasks/?name=a.task").json()["count"] == 2


@pytest.fixture
def prompts_paused(worker):
    """The worker stops taking prompts, so they stay queued until the test lets them go."""
    for queue in queues.PROMPT_QUEUES:
        celery_app.control.cancel_consumer(queue, destination=[worker.node_name], reply=True)
    yield
    for queue in queues.PROMPT_QUEUES:
        celery_app.control.add_consumer(queue, destination=[worker.node_name], reply=True)


def test_revoking_a_queued_task_stops_it_from_running(prompts_paused, make_user, client_for, openai_server):
    client = client_for(make_user())
    text = f"never run me {uuid.uuid4().hex}"
    accepted = client.post("/api/v1/prompts/", {"prompt_text": text}, format="json").json()
    wait_record(accepted["task_id"], states=("QUEUED",))

    revoked = client.post(f"/api/v1/tasks/{accepted['task_id']}/revoke/")

    assert revoked.status_code == 200 and revoked.json()["state"] == "REVOKED"
    assert PromptRequest.objects.get(pk=accepted["id"]).status == "CANCELLED"
    for queue in queues.PROMPT_QUEUES:  # let the worker see the message now
        celery_app.control.add_consumer(queue, reply=True)
    time.sleep(2)
    assert openai_server.calls_for(text) == 0
    assert not PromptResponse.objects.filter(request_id=accepted["id"]).exists()
    assert client.post(f"/api/v1/tasks/{accepted['task_id']}/revoke/").status_code == 409


def test_cancelling_a_running_prompt_ends_cancelled_without_a_response(worker, make_user, client_for, openai_server):
    client = client_for(make_user())
    text = f"#delay=1.5 cancel me midway {uuid.uuid4().hex}"
    accepted = client.post("/api/v1/prompts/", {"prompt_text": text}, format="json").json()
    wait_until(lambda: PromptRequest.objects.get(pk=accepted["id"]).status == "IN_PROGRESS", what="it to start")

    cancelled = client.post(f"/api/v1/prompts/{accepted['id']}/cancel/")

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    wait_until(lambda: openai_server.calls_for(text) == 1, what="the provider call to finish")
    time.sleep(0.5)
    assert PromptRequest.objects.get(pk=accepted["id"]).status == "CANCELLED"
    assert not PromptResponse.objects.filter(request_id=accepted["id"]).exists()
    assert client.post(f"/api/v1/prompts/{accepted['id']}/cancel/").status_code == 409


def test_only_staff_may_terminate(db, make_user, client_for):
    user = make_user()
    record = TaskRecord.objects.create(name="x", queue="q", owner=user, state="QUEUED")

    response = client_for(user).post(f"/api/v1/tasks/{record.pk}/revoke/", {"terminate": True}, format="json")

    assert response.status_code == 403
    assert TaskRecord.objects.get(pk=record.pk).state == "QUEUED"


def test_a_failed_prompt_can_be_retried_and_completes(worker, make_user, client_for, openai_server):
    client = client_for(make_user())
    text = f"#fail=3 works on the second attempt {uuid.uuid4().hex}"  # 3 tries fail, the retry succeeds
    accepted = client.post("/api/v1/prompts/", {"prompt_text": text}, format="json").json()
    wait_until(lambda: PromptRequest.objects.get(pk=accepted["id"]).status == "FAILED", what="the first failure")

    retried = client.post(f"/api/v1/prompts/{accepted['id']}/retry/")

    assert retried.status_code == 202 and retried.json()["task_id"] != accepted["task_id"]
    wait_until(lambda: PromptRequest.objects.get(pk=accepted["id"]).status == "COMPLETED", what="the retry")
    assert PromptResponse.objects.filter(request_id=accepted["id"]).count() == 1
    assert client.post(f"/api/v1/prompts/{accepted['id']}/retry/").status_code == 409


def test_the_sweeper_finds_a_request_whose_dispatch_was_lost_and_completes_it(worker, make_user, settings):
    user = make_user()
    # As if the web process died between its commit and the send: recorded, never sent.
    request = PromptRequest.objects.create(owner=user, model="gpt-4o-mini", prompt_text=f"lost {uuid.uuid4().hex}")
    record = TaskRecord.objects.create(
        name="prompts.process_prompt_request", queue="prompts.low", owner=user, args=[request.pk],
        target_type="prompts.promptrequest", target_id=str(request.pk),
    )  # fmt: skip
    PromptRequest.objects.filter(pk=request.pk).update(task_id=record.pk)
    TaskRecord.objects.filter(pk=record.pk).update(updated_at=timezone.now() - timedelta(minutes=10))

    assert task_records_sweep()["resent"] == 1

    wait_until(lambda: PromptRequest.objects.get(pk=request.pk).status == "COMPLETED", what="the swept request")
    assert PromptResponse.objects.filter(request=request).count() == 1


def test_the_sweeper_resends_a_message_a_worker_took_and_died_with_before_noting_it(worker, make_user):
    """The message left the queue, no worker recorded receiving it: lost until the visibility timeout."""
    user = make_user()
    for queue in queues.PROMPT_QUEUES:  # nobody takes prompts for now
        celery_app.control.cancel_consumer(queue, destination=[worker.node_name], reply=True)
    try:
        request = prompt_request_create(user=user, prompt_text=f"taken and lost {uuid.uuid4().hex}")
        record_id = request.task_id
        wait_until(lambda: TaskRecord.objects.get(pk=record_id).state == "QUEUED", what="the send")
        with celery_app.connection_for_write() as conn:  # as a worker that fetched it and died at once
            channel = conn.default_channel
            keys = [f"{queue}{channel.sep}{step}" if step else queue
                    for queue in queues.PROMPT_QUEUES for step in channel.priority_steps]  # fmt: skip

            def emptied() -> bool:
                # A fetch the worker had under way when it stopped consuming gives the message
                # back ("Requeuing undeliverable message"), possibly after a first delete.
                channel.client.delete(*keys)
                time.sleep(0.3)
                return sum(channel.client.llen(key) for key in keys) == 0

            wait_until(emptied, what="the prompt queues to stay empty")
        TaskRecord.objects.filter(pk=record_id).update(updated_at=timezone.now() - timedelta(minutes=3))

        assert task_records_sweep()["resent"] == 1
    finally:
        for queue in queues.PROMPT_QUEUES:
            celery_app.control.add_consumer(queue, destination=[worker.node_name], reply=True)

    wait_until(lambda: PromptRequest.objects.get(pk=request.pk).status == "COMPLETED", what="the resent request")
    assert TaskRecord.objects.get(pk=record_id).sends == 2


def test_two_beats_at_once_send_each_due_job_once_per_period(worker, tmp_path):
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="ops-test-every-second", task="jobs.sweep_task_records", interval=every_second,
                                queue=queues.MAINTENANCE)  # fmt: skip
    logs = [tmp_path / "beat-a.log", tmp_path / "beat-b.log"]
    command = [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO", "--max-interval=1"]
    beats = [
        subprocess.Popen(command, cwd=BASE_DIR, env=worker.env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        for log in logs
    ]

    def count() -> list[int]:
        return [log.read_text().count("Sending due task ops-test-every-second") for log in logs]

    try:
        # Both beats start at once; once one sends, both have had time to try for the lock.
        wait_until(lambda: sum(count()) > 0, timeout=60, interval=0.5, what="the first send")
        before = count()
        time.sleep(8)
        # Counted while both run: when one stops, handing the lock to the other is intended.
        sends = [after - earlier for after, earlier in zip(count(), before, strict=True)]
        assert all(beat.poll() is None for beat in beats), "a beat exited early"
    finally:
        for beat in beats:
            beat.terminate()
        stuck = []
        for beat in beats:
            try:
                beat.wait(timeout=20)
            except subprocess.TimeoutExpired:  # never left running for the tests after this one
                stuck.append(beat.pid)
                beat.kill()
                beat.wait()
    assert not stuck, f"beats {stuck} did not stop within 20 s of SIGTERM; see {logs}"

    assert sorted(sends)[0] == 0, f"both beats sent: {sends}"
    assert 3 <= sum(sends) <= 10, f"expected about one send a second for 8 s, got {sends}"


def test_operations_page_shows_workers_queues_and_periodic_jobs(worker, client, make_user):
    client.force_login(make_user(staff=True))

    page = client.get("/admin/operations/")
    index = client.get("/admin/")

    assert page.status_code == 200
    html = page.content.decode()
    assert worker.node_name in html
    assert "prompts.high" in html and "reset-daily-limits" in html
    assert "/admin/operations/" in index.content.decode()
