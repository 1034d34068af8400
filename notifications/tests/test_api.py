"""The webhook and notification API: checked URLs, secret shown once, owner-only, staff-only."""

import pytest
from rest_framework.test import APIClient

from notifications.models import Delivery, Notification, WebhookEndpoint


def create(client, url: str, events=("prompt.completed",)):
    return client.post("/api/v1/webhooks/", {"url": url, "events": list(events)}, format="json")


def test_creating_an_endpoint_shows_its_secret_once(make_user, client_for, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    client = client_for(make_user())

    response = create(client, "http://127.0.0.1:9/hook", events=["system", "prompt.completed", "system"])

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["prompt.completed", "system"]
    assert created["is_active"] is True
    listed = client.get("/api/v1/webhooks/").json()["results"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in client.get(f"/api/v1/webhooks/{created['id']}/").json()
    assert WebhookEndpoint.objects.get(pk=created["id"]).secret == created["secret"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://0x7f000001/hook", "loopback"),  # 127.0.0.1 written in hex
        ("http://10.0.0.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://localhost:8000/hook", "'localhost' resolves to 127.0.0.1"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "0.0.0.0 is a"),
        ("file:///etc/passwd", "Only http and https"),
        ("ftp://example.com/hook", "Only http and https"),
        ("http://user:secret@example.com/hook", "Credentials"),
        ("no scheme at all", "Only http and https"),
    ],
)
def test_internal_and_non_http_urls_are_refused_at_creation(make_user, client_for, url, reason):
    client = client_for(make_user())

    response = create(client, url)

    assert response.status_code == 400
    message = response.json()["url"][0]
    assert reason in message, message
    assert not WebhookEndpoint.objects.exists()


def test_metadata_address_is_refused_even_when_private_networks_are_allowed(make_user, client_for, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True

    response = create(client_for(make_user()), "http://169.254.169.254/")

    assert response.status_code == 400 and "metadata" in response.json()["url"][0]


@pytest.mark.parametrize("events", [[], ["prompt.exploded"], "system", None])
def test_unknown_or_missing_events_are_refused(make_user, client_for, settings, events):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True

    response = client_for(make_user()).post(
        "/api/v1/webhooks/", {"url": "http://127.0.0.1:9/", "events": events}, format="json"
    )

    assert response.status_code == 400 and "events" in response.json()


def test_another_users_webhook_answers_404_and_stays(make_user, client_for, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    owner, other = make_user(), make_user()
    endpoint_id = create(client_for(owner), "http://127.0.0.1:9/").json()["id"]
    other_client = client_for(other)

    assert other_client.get(f"/api/v1/webhooks/{endpoint_id}/").status_code == 404
    assert other_client.delete(f"/api/v1/webhooks/{endpoint_id}/").status_code == 404
    assert other_client.get("/api/v1/webhooks/").json()["count"] == 0
    assert WebhookEndpoint.objects.filter(pk=endpoint_id).exists()
    assert client_for(owner).delete(f"/api/v1/webhooks/{endpoint_id}/").status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=endpoint_id).exists()


def test_endpoints_per_user_are_limited(make_user, client_for, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOKS_MAX_ENDPOINTS_PER_USER = 2
    client = client_for(make_user())

    statuses = [create(client, f"http://127.0.0.1:9/{n}").status_code for n in range(3)]

    assert statuses == [201, 201, 400]


def test_system_notifications_are_staff_only(make_user, client_for):
    body = {"title": "Maintenance", "body": "Tonight at ten."}

    assert client_for(make_user()).post("/api/v1/notifications/system/", body, format="json").status_code == 403
    assert APIClient().post("/api/v1/notifications/system/", body, format="json").status_code == 401
    accepted = client_for(make_user(staff=True)).post("/api/v1/notifications/system/", body, format="json")
    assert accepted.status_code == 202
    assert set(accepted.json()) >= {"id", "status", "task_id", "status_url"}
    assert accepted.json()["status"] == "PENDING"


def test_system_notification_to_an_unknown_tier_is_refused(make_user, client_for):
    staff = client_for(make_user(staff=True))

    response = staff.post("/api/v1/notifications/system/", {"title": "t", "body": "b", "tier": "gold"}, format="json")

    assert response.status_code == 400 and "tier" in response.json()


def test_notifications_list_shows_only_ones_own(make_user, client_for, make_endpoint):
    me, other = make_user(), make_user()
    Notification.objects.create(user=me, event="system", title="mine")
    Notification.objects.create(user=other, event="system", title="theirs")
    mine = make_endpoint(me)
    Delivery.objects.create(endpoint=mine, event="prompt.completed", payload={"n": 1}, max_attempts=3)
    Delivery.objects.create(endpoint=make_endpoint(other), event="prompt.completed", max_attempts=3)
    client = client_for(me)

    body = client.get("/api/v1/notifications/").json()

    assert [n["title"] for n in body["notifications"]] == ["mine"]
    assert [(d["endpoint"], d["payload"]) for d in body["deliveries"]] == [(mine.pk, {"n": 1})]
    assert client.get("/api/v1/notifications/deliveries/").json()["count"] == 1
    assert client.get("/api/v1/notifications/?limit=x").status_code == 400


def test_email_preferences_opt_in_and_out_per_event(make_user, client_for):
    client = client_for(make_user())

    defaults = client.get("/api/v1/notifications/preferences/").json()["email"]
    changed = client.put(
        "/api/v1/notifications/preferences/", {"email": {"system": False, "prompt.failed": True}}, format="json"
    )
    unknown = client.patch("/api/v1/notifications/preferences/", {"email": {"nope": True}}, format="json")

    assert defaults["system"] is True and defaults["prompt.completed"] is False
    assert changed.status_code == 200
    assert changed.json()["email"]["system"] is False and changed.json()["email"]["prompt.failed"] is True
    assert unknown.status_code == 400
    assert client.get("/api/v1/notifications/preferences/").json()["email"] == changed.json()["email"]
