"""Daily limits: atomic under concurrency, a clear 429, reset by the daily job, per-day statistics."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from celery import current_app as celery_app
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import wait_until
from prompts.models import PromptRequest
from users.models import Tier, UsageDaily, User


def tiny_tier(limit: int) -> Tier:
    return Tier.objects.create(slug=f"tiny-{uuid.uuid4().hex[:6]}", name="Tiny", daily_request_limit=limit)


def use_up(user: User, used: int) -> None:
    User.objects.filter(pk=user.pk).update(requests_today=used, usage_date=timezone.localdate())


def post_prompt(client: APIClient, text: str = "hello"):
    return client.post("/api/v1/prompts/", {"prompt_text": text}, format="json")


def test_fifty_concurrent_requests_with_one_left_admit_exactly_one(transactional_db, make_user):
    user = make_user()
    user.tier = tiny_tier(5)
    user.save()
    use_up(user, 4)
    start = threading.Barrier(50)

    def attempt(_: int) -> int:
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=user.api_key)
        start.wait()
        try:
            return post_prompt(client).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(attempt, range(50)))

    assert codes.count(202) == 1
    assert codes.count(429) == 49
    assert PromptRequest.objects.filter(owner=user).count() == 1
    assert User.objects.get(pk=user.pk).requests_today == 5


def test_over_the_limit_answers_429_with_retry_after_and_reset_time(db, make_user, client_for):
    user = make_user()  # free: 100 a day
    use_up(user, 100)

    response = post_prompt(client_for(user))

    assert response.status_code == 429
    body = response.json()
    assert body["limit"] == 100 and body["used"] == 100 and body["remaining"] == 0
    assert "reset" in body["detail"]
    reset_at = body["reset_at"]
    wait = int(response["Retry-After"])
    assert 0 < wait <= 24 * 3600
    expected_reset = timezone.now() + timedelta(seconds=wait)
    assert abs((timezone.datetime.fromisoformat(reset_at) - expected_reset).total_seconds()) < 5
    assert not PromptRequest.objects.filter(owner=user).exists()


def test_after_the_daily_reset_job_the_user_is_admitted_again(worker, make_user, client_for):
    user = make_user()
    use_up(user, 100)
    client = client_for(user)
    assert post_prompt(client).status_code == 429

    reset = celery_app.send_task("users.reset_all_daily_limits", queue="maintenance")
    assert reset.get(timeout=20) >= 1

    assert post_prompt(client).status_code == 202
    assert client.get("/api/v1/me/").json()["used_today"] == 1


def test_a_new_day_counts_from_zero_even_if_the_reset_did_not_run(db, make_user, client_for):
    user = make_user()
    User.objects.filter(pk=user.pk).update(requests_today=100, usage_date=timezone.localdate() - timedelta(days=1))
    client = client_for(user)

    assert client.get("/api/v1/me/").json()["used_today"] == 0
    assert post_prompt(client).status_code == 202
    assert client.get("/api/v1/me/").json()["used_today"] == 1


def test_rejected_requests_do_not_count_against_the_limit(db, make_user, client_for):
    user = make_user()
    client = client_for(user)

    assert client.post("/api/v1/prompts/", {"prompt_text": ""}, format="json").status_code == 400
    assert client.post("/api/v1/prompts/", {"prompt_text": "x", "model": "nope"}, format="json").status_code == 400

    assert client.get("/api/v1/me/").json()["used_today"] == 0


def test_me_shows_tier_limit_use_remaining_and_reset_time(db, make_user, client_for):
    user = make_user(tier="pro")
    use_up(user, 7)

    me = client_for(user).get("/api/v1/me/").json()

    assert me["tier"] == {"slug": "pro", "name": "Pro", "queue_priority": "normal"}
    assert me["daily_request_limit"] == 1000
    assert me["used_today"] == 7 and me["remaining_today"] == 993
    assert timezone.datetime.fromisoformat(me["reset_at"]) > timezone.now()


def test_usage_statistics_after_completed_and_failed_requests_are_exact(worker, make_user, client_for):
    user = make_user()
    client = client_for(user)
    tag = uuid.uuid4().hex[:8]
    ids = [post_prompt(client, f"fine {i} {tag}").json()["id"] for i in range(3)]
    ids += [post_prompt(client, f"#status=400 broken {i} {tag}").json()["id"] for i in range(2)]
    wait_until(
        lambda: PromptRequest.objects.filter(pk__in=ids, status__in=["COMPLETED", "FAILED"]).count() == 5,
        what="five requests to finish",
    )
    completed = PromptRequest.objects.filter(pk__in=ids, status="COMPLETED").select_related("response")
    tokens = sum(r.response.total_tokens for r in completed)
    mean_latency = sum(r.response.duration_ms for r in completed) // 3

    today = client.get("/api/v1/me/usage/?days=3").json()

    assert len(today) == 3
    assert today[0]["date"] == timezone.localdate().isoformat()
    assert {k: today[0][k] for k in ["requests", "completed", "failed", "tokens", "mean_latency_ms"]} == {
        "requests": 5,
        "completed": 3,
        "failed": 2,
        "tokens": tokens,
        "mean_latency_ms": mean_latency,
    }
    assert today[1]["requests"] == 0 and today[1]["mean_latency_ms"] is None

    # Recomputing from the requests (the repair task) gives the same numbers, however often it runs.
    for _ in range(2):
        celery_app.send_task("prompts.update_user_statistics", args=[user.pk], queue="maintenance").get(timeout=20)
    row = UsageDaily.objects.get(user=user, date=timezone.localdate())
    assert (row.requests, row.completed, row.failed, row.tokens) == (5, 3, 2, tokens)


def test_usage_days_out_of_range_answers_400(db, make_user, client_for):
    client = client_for(make_user())

    for days in ["0", "-1", "abc", "367"]:
        response = client.get(f"/api/v1/me/usage/?days={days}")
        assert response.status_code == 400 and "days" in response.json()
