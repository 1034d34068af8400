"""Abuse: rate limits shared through Redis, failed authentications, page sizes."""

import uuid

from django.core.cache import cache
from redis import Redis
from rest_framework.test import APIClient

from jobs.models import TaskRecord


def test_too_many_failed_keys_from_one_address_answer_429(db, settings, make_user):
    settings.AUTH_FAILURES_PER_MINUTE = 5
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    attacker = APIClient(REMOTE_ADDR=address)

    codes = [attacker.get("/api/v1/prompts/", HTTP_X_API_KEY=f"guess-{n}").status_code for n in range(7)]

    assert codes[:5] == [401] * 5
    assert codes[5:] == [429, 429]
    honest = make_user()
    assert APIClient(REMOTE_ADDR=address).get("/api/v1/prompts/", HTTP_X_API_KEY=honest.api_key).status_code == 200


def test_a_users_request_rate_is_limited_with_retry_after(db, settings, make_user, client_for):
    settings.API_USER_THROTTLE_RATE = "3/min"
    client = client_for(make_user())

    codes = [client.get("/api/v1/me/").status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    response = client.get("/api/v1/me/")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "throttled" in response.json()["detail"].lower()


def test_a_rate_window_left_without_an_expiry_gets_one_and_still_counts(db, settings, make_user, client_for):
    """A counter with no expiry (left by a crash between commands, or by hand) would limit forever."""
    settings.API_USER_THROTTLE_RATE = "3/min"
    user = make_user()
    key = cache.make_key(f"throttle_user_{user.pk}:count")
    redis = Redis.from_url(settings.CACHES["default"]["LOCATION"])
    redis.set(key, 2)  # two requests counted, no expiry

    codes = [client_for(user).get("/api/v1/me/").status_code for _ in range(2)]

    assert codes == [200, 429]
    assert 0 < redis.ttl(key) <= 60
    redis.delete(key)


def test_in_a_windows_last_half_second_retry_after_is_one_second_not_the_whole_period(
    db, settings, make_user, client_for
):
    settings.API_USER_THROTTLE_RATE = "3/min"
    user = make_user()
    key = cache.make_key(f"throttle_user_{user.pk}:count")
    redis = Redis.from_url(settings.CACHES["default"]["LOCATION"])
    redis.set(key, 3, px=400)  # the limit reached; Redis's TTL says 0 seconds left

    response = client_for(user).get("/api/v1/me/")

    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    redis.delete(key)


def test_page_sizes_are_capped(db, make_user, client_for):
    user = make_user()
    TaskRecord.objects.bulk_create([TaskRecord(name="x", queue="q", owner=user) for _ in range(105)])

    page = client_for(user).get("/api/v1/tasks/?page_size=100000").json()

    assert page["count"] == 105
    assert len(page["results"]) == 100
