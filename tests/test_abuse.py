"""Abuse: rate limits shared through Redis, failed authentications, page sizes."""

import threading
import time
import uuid

import pytest
from django.core.cache import cache
from django.db import connection
from redis import Redis
from rest_framework.test import APIClient

from common import throttles
from common.throttles import leases_clear
from jobs.models import TaskRecord


@pytest.fixture(autouse=True)
def _no_leases_left():
    """Each test starts without rate leases kept by this process for an earlier one."""
    leases_clear()
    yield
    leases_clear()


def _counter(settings, user) -> tuple[Redis, str]:
    return Redis.from_url(settings.CACHES["default"]["LOCATION"]), cache.make_key(f"throttle_user_{user.pk}:count")


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


@pytest.mark.parametrize(
    "rate, counted_in_redis",
    [
        # 16 counted by the first request, used by it and the next 15; then 16 more, and so on.
        ("4096/min", [16] * 16 + [32] * 16 + [48]),
        # A lease is at most a 128th of the limit: under 256 a window, one request at a time.
        ("255/min", [1, 2, 3]),
    ],
)
def test_a_process_takes_a_busy_users_requests_from_redis_a_few_at_a_time(
    db, settings, make_user, client_for, rate, counted_in_redis
):
    settings.API_USER_THROTTLE_RATE = rate
    user = make_user()
    redis, key = _counter(settings, user)
    client = client_for(user)

    counted = []
    for _ in counted_in_redis:
        assert client.get("/api/v1/me/").status_code == 200
        counted.append(int(redis.get(key)))

    assert counted == counted_in_redis
    redis.delete(key)


def test_with_leases_one_process_admits_exactly_the_limit_to_concurrent_requests(
    transactional_db, settings, make_user, client_for, monkeypatch
):
    monkeypatch.setattr(throttles, "LEASE_SHARE", 8)  # a small limit leased as a large one is
    settings.API_USER_THROTTLE_RATE = "150/min"
    user = make_user()
    redis, key = _counter(settings, user)
    codes: list[int] = []
    start = threading.Barrier(6)

    def hammer() -> None:
        client = client_for(user)
        start.wait()
        try:
            for _ in range(40):
                codes.append(client.get("/api/v1/me/").status_code)
        finally:
            connection.close()  # this thread's own

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert codes.count(200) == 150 and codes.count(429) == 90
    redis.delete(key)


def test_what_another_process_leased_is_never_admitted_twice_and_little_is_lost(
    db, settings, make_user, client_for, monkeypatch
):
    """Another process's unused lease is lost to the window: at most what it took, less one."""
    monkeypatch.setattr(throttles, "LEASE_SHARE", 8)  # a small limit leased as a large one is
    settings.API_USER_THROTTLE_RATE = "200/min"
    user = make_user()
    redis, key = _counter(settings, user)
    client = client_for(user)

    assert client.get("/api/v1/me/").status_code == 200  # leased 16 (200 left: an eighth is 25)
    leases_clear()  # as if that lease were another process's, which never uses it
    admitted = 1 + sum(client.get("/api/v1/me/").status_code == 200 for _ in range(250))

    assert 200 - 15 <= admitted < 200
    assert int(redis.get(key)) >= 200  # the refused were counted too, as without leases
    redis.delete(key)


def test_a_lease_ends_with_its_window(db, settings, make_user, client_for):
    settings.API_USER_THROTTLE_RATE = "4096/min"
    user = make_user()
    redis, key = _counter(settings, user)
    redis.set(key, 0, px=2500)  # a window with 2.5 s left
    client = client_for(user)

    assert client.get("/api/v1/me/").status_code == 200
    assert int(redis.get(key)) == 16  # 15 kept by this process for the rest of the window
    deadline = time.monotonic() + 10
    while redis.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not redis.exists(key)  # the window ended
    assert client.get("/api/v1/me/").status_code == 200

    assert int(redis.get(key)) == 16  # counted in Redis again, in a new window: the old lease was not used
    assert redis.ttl(key) > 50
    redis.delete(key)


def test_page_sizes_are_capped(db, make_user, client_for):
    user = make_user()
    TaskRecord.objects.bulk_create([TaskRecord(name="x", queue="q", owner=user) for _ in range(105)])

    page = client_for(user).get("/api/v1/tasks/?page_size=100000").json()

    assert page["count"] == 105
    assert len(page["results"]) == 100
