"""API keys kept by the web process (users/key_cache.py): no query for a kept key, and every
change to a key, its user or a tier drops it, whoever makes it, as PostgreSQL notifies it."""

import contextlib
import os
import signal
import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import wait_until
from jobs.models import TaskRecord
from users import key_cache
from users.key_cache import USER_COUNTERS, api_key_get, is_listening, kept_keys, key_cache_sync
from users.models import ApiKey, Tier, User
from users.services import api_key_hash

# Keys are kept only when read outside a transaction: these tests commit, as the web does.
pytestmark = pytest.mark.usefixtures("transactional_db")


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=user.api_key)
    return client


def _kept(user) -> bool:
    return api_key_hash(user.api_key) in key_cache._keys


def _get(client, path="/api/v1/me/"):
    """The answer, and the statements that looked API keys up while making it."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    return response, [
        sql for sql in (query["sql"] for query in queries) if sql.startswith("SELECT") and "users_apikey" in sql
    ]


def _listening():
    api_key_get("no such key")  # starts the listener, if it is not running
    wait_until(is_listening, timeout=10, what="the key cache to listen")


def test_a_key_is_looked_up_once_then_answered_from_the_process(make_user):
    user = make_user(tier="pro")
    _listening()
    client = _client(user)

    first, looked_up = _get(client)
    second, looked_up_again = _get(client)

    assert first.status_code == second.status_code == 200
    assert len(looked_up) == 1 and looked_up_again == []
    assert first.json() == second.json() and second.json()["tier"]["slug"] == "pro"
    assert _kept(user)


def test_each_request_gets_its_own_key_user_and_tier(make_user):
    user = make_user()
    _listening()
    key_hash = api_key_hash(user.api_key)
    api_key_get(key_hash)

    one, other = api_key_get(key_hash), api_key_get(key_hash)

    assert one is not other and one.user is not other.user and one.user.tier is not other.user.tier
    one.user.first_name = "changed by a view"
    one.user.tier.allowed_models.append("not-a-model")
    assert other.user.first_name == "" and "not-a-model" not in other.user.tier.allowed_models
    assert api_key_get(key_hash).user.first_name == ""
    # The daily counters are never kept: read from the database when used.
    assert set(USER_COUNTERS) <= other.user.get_deferred_fields()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda user: ApiKey.objects.filter(user=user).update(revoked_at=timezone.now()), id="revoked"),
        pytest.param(lambda user: User.objects.filter(pk=user.pk).update(is_active=False), id="deactivated"),
        pytest.param(lambda user: User.objects.filter(pk=user.pk).delete(), id="deleted"),
        pytest.param(lambda user: ApiKey.objects.filter(user=user).delete(), id="key deleted"),
    ],
)
def test_a_key_changed_behind_the_applications_back_is_refused_once_notified(make_user, change):
    user, bystander = make_user(), make_user()
    _listening()
    client = _client(user)
    assert client.get("/api/v1/me/").status_code == 200 and _client(bystander).get("/api/v1/me/").status_code == 200
    assert _kept(user) and _kept(bystander)

    change(user)  # a bulk statement: no save(), no signal
    assert key_cache_sync()

    assert not _kept(user)
    assert _kept(bystander)  # only the changed user's keys are dropped
    assert client.get("/api/v1/me/").status_code == 401


def test_a_tier_changed_by_an_update_applies_to_kept_keys_at_once(make_user):
    user = make_user(tier="pro")
    _listening()
    client = _client(user)
    assert client.post("/api/v1/prompts/", {"prompt_text": "a" * 20}, format="json").status_code == 202

    Tier.objects.filter(slug="pro").update(max_prompt_length=10)
    assert key_cache_sync()

    assert kept_keys() == 0  # a tier's change drops every key
    response = client.post("/api/v1/prompts/", {"prompt_text": "a" * 20}, format="json")
    assert response.status_code == 400 and "at most 10" in response.json()["prompt_text"][0]


def test_a_user_moved_to_another_tier_by_an_update_is_seen_in_it(make_user):
    user = make_user()
    _listening()
    client = _client(user)
    assert client.get("/api/v1/me/").json()["tier"]["slug"] == "free"

    User.objects.filter(pk=user.pk).update(tier=Tier.objects.get(slug="premium"), tier_pinned=True)
    assert key_cache_sync()

    assert client.get("/api/v1/me/").json()["tier"]["slug"] == "premium"


def test_what_every_request_writes_does_not_drop_a_kept_key_and_counters_are_read_fresh(make_user):
    user = make_user()
    _listening()
    client = _client(user)
    ApiKey.objects.filter(user=user).update(last_used_at=timezone.now() - timezone.timedelta(hours=1))
    assert client.get("/api/v1/me/").json()["used_today"] == 0

    for number in range(3):  # each counts against today's limit and may note the key's use
        assert client.post("/api/v1/prompts/", {"prompt_text": f"p{number}"}, format="json").status_code == 202
    assert key_cache_sync()

    assert _kept(user)
    response, looked_up = _get(client)
    assert looked_up == [] and response.json()["used_today"] == 3
    assert TaskRecord.objects.filter(owner=user).count() == 3
    assert ApiKey.objects.get(user=user).last_used_at > timezone.now() - timezone.timedelta(minutes=1)


def test_a_key_read_inside_a_transaction_is_not_kept(make_user):
    user = make_user()
    _listening()

    with transaction.atomic():
        assert api_key_get(api_key_hash(user.api_key)) is not None

    assert not _kept(user)


def test_a_lookup_that_raced_a_change_is_not_kept(make_user, monkeypatch):
    """A change notified while a key is being looked up may be one the lookup did not see."""
    from users import authentication

    user = make_user()
    _listening()
    lookup = authentication.api_key_lookup

    def lookup_then_change(key_hash):
        found = lookup(key_hash)
        User.objects.filter(pk=user.pk).update(first_name="changed meanwhile")
        assert key_cache_sync()
        return found

    monkeypatch.setattr(authentication, "api_key_lookup", lookup_then_change)
    assert api_key_get(api_key_hash(user.api_key)).user.first_name == ""

    assert not _kept(user)
    monkeypatch.setattr(authentication, "api_key_lookup", lookup)
    assert api_key_get(api_key_hash(user.api_key)).user.first_name == "changed meanwhile"


def test_a_lost_listening_connection_empties_the_cache_until_it_listens_again(make_user):
    user = make_user()
    _listening()
    client = _client(user)
    client.get("/api/v1/me/")
    assert _kept(user)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [key_cache.LISTENER_NAME],
        )
    wait_until(lambda: kept_keys() == 0, timeout=15, what="the listener to notice and empty the cache")

    assert client.get("/api/v1/me/").status_code == 200  # looked up meanwhile
    wait_until(is_listening, timeout=15, what="the listener to listen again")
    client.get("/api/v1/me/")
    assert _kept(user)


def test_concurrent_requests_all_get_the_right_user(make_user):
    users = [make_user() for _ in range(4)]
    _listening()
    seen: list[tuple[int, int]] = []

    def ask(user):
        try:
            for _ in range(10):
                seen.append((user.pk, api_key_get(api_key_hash(user.api_key)).user.pk))
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=ask, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(seen) == 40 and all(asked == got for asked, got in seen)


@pytest.mark.parametrize(("model", "unwatched"), [(User, set(USER_COUNTERS)), (ApiKey, {"last_used_at"})])
def test_the_triggers_compare_every_column_but_those_every_request_writes(model, unwatched):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE %s",
            [model._meta.db_table, "%key_cache_update"],
        )
        (definition,) = cursor.fetchone()
    columns = {field.column for field in model._meta.concrete_fields}

    for column in columns - unwatched:
        assert f"old.{column}" in definition.lower() and f"new.{column}" in definition.lower(), column
    for column in unwatched:
        assert f"old.{column}" not in definition.lower(), column


def test_a_statement_that_changes_many_users_drops_every_key_with_a_bounded_number_of_notifications(
    make_user, monkeypatch
):
    user = make_user()
    _listening()
    _client(user).get("/api/v1/me/")
    User.objects.bulk_create([User(username=f"bulk-{n}-{user.pk}") for n in range(150)])
    assert key_cache_sync()
    received = []
    apply = key_cache._apply
    monkeypatch.setattr(key_cache, "_apply", lambda payload: (received.append(payload), apply(payload)))

    User.objects.update(first_name="everyone")
    assert key_cache_sync()

    assert kept_keys() == 0
    changes = [payload for payload in received if not payload.startswith("sync:")]
    assert "*" in changes and len(changes) == 101


def _listener_backends() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [key_cache.LISTENER_NAME])
        return [pid for (pid,) in cursor.fetchall()]


@pytest.fixture
def stopped_listener():
    """Stops the listener's server process (SIGSTOP) as a hung server or a lost network would."""
    stopped = []

    def stop() -> None:
        (pid,) = _listener_backends()
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)

    yield stop
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):  # gone already: the test let it go on
            os.kill(pid, signal.SIGCONT)


def test_a_listener_that_hears_nothing_stops_the_cache_being_served(make_user, monkeypatch, stopped_listener):
    monkeypatch.setattr(key_cache, "SILENCE_SECONDS", 2.0)
    monkeypatch.setattr(key_cache, "PING_SECONDS", 0.5)
    user = make_user()
    _listening()
    client = _client(user)
    assert client.get("/api/v1/me/").status_code == 200 and _kept(user)

    stopped_listener()
    ApiKey.objects.filter(user=user).update(revoked_at=timezone.now())  # notified, but nobody hears it
    wait_until(lambda: not is_listening(), timeout=10, what="the cache to stop trusting its listener")

    assert client.get("/api/v1/me/").status_code == 401  # looked up, though still kept


def test_a_key_read_with_autocommit_off_is_not_kept(make_user):
    user = make_user()
    _listening()
    ApiKey.objects.filter(user=user).update(revoked_at=timezone.now())
    key_hash = api_key_hash(user.api_key)

    transaction.set_autocommit(False)
    try:
        ApiKey.objects.filter(user=user).update(revoked_at=None)  # not committed
        assert api_key_get(key_hash) is not None
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)

    assert not _kept(user) and api_key_get(key_hash) is None


def test_a_stop_that_times_out_starts_no_second_listener(make_user, stopped_listener):
    _listening()
    stopped_listener()

    assert key_cache.key_cache_stop(timeout=1) is False
    api_key_get("no such key")
    assert len([t for t in threading.enumerate() if t.name == key_cache.LISTENER_NAME]) == 1

    os.kill(_listener_backends()[0], signal.SIGCONT)  # it wakes, hears "stop", and goes
    wait_until(lambda: not [t for t in threading.enumerate() if t.name == key_cache.LISTENER_NAME], timeout=15)
    _listening()  # the next lookup starts a new one
    assert len(_listener_backends()) == 1
