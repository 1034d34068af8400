"""The operators' dashboard: its numbers come from a real worker's work, failures can be retried."""

import uuid

from django.db import transaction
from django.utils import timezone

from ai.budgets import budget_acquire, budget_reset
from ai.models import ProviderBudget
from conftest import wait_until
from jobs import queues
from jobs.dashboard import dashboard_data
from jobs.heartbeat import workers_online
from jobs.models import TaskRecord
from prompts.models import PromptRequest
from prompts.services import prompt_request_create
from users.models import User


def wait_final(task_id: str) -> TaskRecord:
    return wait_until(
        lambda: TaskRecord.objects.filter(pk=task_id, state__in=TaskRecord.FINAL_STATES).first(),
        what=f"task {task_id} to finish",
    )


def test_the_dashboard_is_linked_from_the_admin_index_and_staff_only(db, client, make_user):
    client.force_login(make_user(staff=True))
    assert 'href="/admin/dashboard/"' in client.get("/admin/").content.decode()
    page = client.get("/admin/dashboard/").content.decode()
    assert 'id="rates-chart"' in page and "jobs/vendor/chartjs/chart.umd.min.js" in page
    assert client.get("/admin/dashboard/panels/").status_code == 200

    client.force_login(make_user())
    for path in ["/admin/dashboard/", "/admin/dashboard/panels/", "/admin/dashboard/data/"]:
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], path
    assert client.post(f"/admin/dashboard/retry/{uuid.uuid4()}/").status_code == 302


def test_finished_work_is_counted_with_its_run_time_and_the_worker_is_online(worker, make_user, client_for):
    user = make_user()
    accepted = client_for(user).post("/api/v1/prompts/", {"prompt_text": "count me"}, format="json").json()
    wait_final(accepted["task_id"])
    wait_until(lambda: any(w["name"] == worker.node_name for w in workers_online()), what="the worker's heartbeat")

    data = dashboard_data()

    assert data["rates"]["totals"]["SUCCESS"] >= 1 and sum(data["rates"]["series"]["SUCCESS"][-2:]) >= 1
    assert len(data["rates"]["series"]["SUCCESS"]) == 24 * 60
    assert "prompts.process_prompt_request" in {row["name"] for row in data["durations"]}
    me = next(w for w in data["workers"] if w["name"] == worker.node_name)
    assert set(me["queues"]) == set(queues.ALL_QUEUES) and me["concurrency"] and me["pool"] == "thread"
    assert not any("No worker consumes" in alert for alert in data["alerts"])
    assert any("Beat has not ticked" in alert for alert in data["alerts"])  # no beat runs in tests
    usage = next(panel for panel in data["panels"] if panel["name"] == "usage-by-tier")
    free = next(row for row in usage["rows"] if row[0] == user.tier.name)
    assert free[2] >= 1 and free[3] >= 1  # active users, requests


def test_users_at_their_limit_are_counted_per_tier(db, make_user):
    user = make_user()
    User.objects.filter(pk=user.pk).update(
        requests_today=user.tier.daily_request_limit, usage_date=timezone.localdate(), tokens_today=77
    )

    usage = next(panel for panel in dashboard_data()["panels"] if panel["name"] == "usage-by-tier")

    row = next(row for row in usage["rows"] if row[0] == user.tier.name)
    assert row[4] >= 77 and row[5] == 1


def test_a_failure_is_grouped_linked_to_its_request_and_retried_from_the_dashboard(
    worker, client, make_user, client_for
):
    operator, user = make_user(staff=True), make_user()
    client.force_login(operator)
    ids = []
    for _ in range(2):
        accepted = client_for(user).post("/api/v1/prompts/", {"prompt_text": "#status=400 no"}, format="json")
        ids.append(accepted.json())
    for accepted in ids:
        assert wait_final(accepted["task_id"]).state == "FAILURE"

    group = next(g for g in dashboard_data()["failures"] if g["name"] == "prompts.process_prompt_request")
    assert group["count"] >= 2 and "400" in group["error_text"]
    failure = next(r for r in group["records"] if r["task_id"] == ids[0]["task_id"])
    assert failure["target_url"] == f"/admin/prompts/promptrequest/{ids[0]['id']}/change/" and failure["retryable"]
    panels = client.get("/admin/dashboard/panels/").content.decode()
    assert f"/admin/dashboard/retry/{ids[0]['task_id']}/" in panels

    response = client.post(f"/admin/dashboard/retry/{ids[0]['task_id']}/", follow=True)

    assert "Retried prompts.promptrequest" in response.content.decode()
    request = PromptRequest.objects.get(pk=ids[0]["id"])
    assert str(request.task_id) != ids[0]["task_id"]
    wait_final(str(request.task_id))
    group = next(g for g in dashboard_data()["failures"] if g["name"] == "prompts.process_prompt_request")
    assert next(r for r in group["records"] if r["task_id"] == ids[0]["task_id"])["retried"]
    # A second retry of the same failure is refused with the reason, not a server error.
    again = client.post(f"/admin/dashboard/retry/{ids[0]['task_id']}/", follow=True)
    assert again.status_code == 200 and "already retried" in again.content.decode()
    assert str(PromptRequest.objects.get(pk=ids[0]["id"]).task_id) == str(request.task_id)


def test_the_dashboard_reads_a_bounded_number_of_queries(db, make_user, django_assert_max_num_queries):
    owner = make_user()
    now = timezone.now()
    TaskRecord.objects.bulk_create(
        TaskRecord(
            name=f"task.{n % 3}",
            queue="maintenance",
            owner=owner,
            state="FAILURE" if n % 2 else "SUCCESS",
            error=f"error {n % 4}",
            started_at=now,
            finished_at=now,
        )
        for n in range(60)
    )
    with django_assert_max_num_queries(12):
        data = dashboard_data()
    assert sum(g["count"] for g in data["failures"]) == 30


def test_waiting_work_per_user_and_provider_budgets_are_shown(db, client, make_user):
    heavy = make_user()
    with transaction.atomic():
        for n in range(5):
            prompt_request_create(user=heavy, prompt_text=f"wait {n}")
    ProviderBudget.objects.create(provider="openai", model="gpt-dash", requests_per_minute=60, tokens_per_minute=1000)
    budget_reset("openai", "gpt-dash")
    budget_acquire("openai", "gpt-dash", tokens=100, max_wait=0)
    try:
        panels = {panel["name"]: panel for panel in dashboard_data()["panels"]}
        client.force_login(make_user(staff=True))
        page = client.get("/admin/dashboard/panels/").content.decode()
    finally:
        budget_reset("openai", "gpt-dash")

    waiting = next(row for row in panels["waiting-by-owner"]["rows"] if row[0] == heavy.username)
    assert waiting[1:3] == [3, 2]  # free tier: two take their turn at once, three wait
    budget = next(row for row in panels["provider-budgets"]["rows"] if row[0] == "openai/gpt-dash")
    assert budget[1:3] == ["1 / 60", "100 / 1,000"]
    assert "Provider budgets, last minute" in page and "Waiting work per user" in page
