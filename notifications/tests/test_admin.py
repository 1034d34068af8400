"""Operators see endpoints, deliveries, notifications; retry deliveries and send system notifications."""

import pytest
from django.contrib import admin

from jobs.models import TaskRecord
from notifications.models import Delivery, FanOut, Notification, NotificationPreference, SystemNotification


@pytest.fixture
def operator_client(client, make_user):
    operator = make_user(staff=True)
    client.force_login(operator)
    return client, operator


def test_every_notifications_admin_page_renders_without_showing_secrets(operator_client, make_endpoint):
    client, operator = operator_client
    endpoint = make_endpoint(operator)
    Delivery.objects.create(endpoint=endpoint, event="prompt.completed", max_attempts=3)
    message = SystemNotification.objects.create(title="Hello", body="World")
    FanOut.objects.create(kind="system", key="k", system_notification=message)
    Notification.objects.create(user=operator, event="system", title="Hello")
    NotificationPreference.objects.create(user=operator, event="system", email=False)

    for model in admin.site._registry:
        if model._meta.app_label != "notifications":
            continue
        base = f"/admin/notifications/{model._meta.model_name}/"
        assert client.get(base).status_code == 200, base
        assert client.get(base + "?q=x").status_code == 200, base
        page = client.get(f"{base}{model.objects.first().pk}/change/")
        assert page.status_code == 200, base
        assert endpoint.secret not in page.content.decode()
    assert client.get("/admin/notifications/systemnotification/add/").status_code == 200


def test_retry_now_sends_a_failed_delivery_again_with_fresh_attempts(operator_client, make_endpoint):
    client, operator = operator_client
    delivery = Delivery.objects.create(
        endpoint=make_endpoint(operator), event="prompt.completed", state="FAILED", attempts=3, max_attempts=3
    )

    response = client.post(
        "/admin/notifications/delivery/", {"action": "retry_now", "_selected_action": [delivery.pk]}, follow=True
    )

    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.state == "RETRYING" and delivery.max_attempts > 3
    assert TaskRecord.objects.filter(name="notifications.deliver_webhook", target_id=str(delivery.pk)).count() == 1


def test_send_action_sends_a_draft_once(operator_client):
    client, _ = operator_client
    message = SystemNotification.objects.create(title="Hello", body="World")

    for _ in range(2):
        client.post("/admin/notifications/systemnotification/", {"action": "send", "_selected_action": [message.pk]})

    message.refresh_from_db()
    assert message.sent_at is not None and message.status == "PENDING"
    assert TaskRecord.objects.filter(name="notifications.send_system_notification").count() == 1
