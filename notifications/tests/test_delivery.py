"""Webhook deliveries through a real worker to a real local receiver: signed, retried, once."""

import json
import time

from celery import current_app as celery_app
from django.db import transaction

from conftest import wait_until
from jobs import queues
from jobs.models import TaskRecord
from jobs.services import task_dispatch
from notifications import task_names
from notifications.models import Delivery, Notification
from notifications.services import notification_event_emit, webhook_delivery_attempt
from notifications.services.deliveries import retry_delay, retry_delay_cap
from notifications.tests.receiver import verify


def emit(user, event="prompt.completed", payload=None):
    with transaction.atomic():  # dispatched when this commits, as from a task's transaction
        return notification_event_emit(user=user, event=event, payload=payload or {"prompt_id": 1})


def wait_final(delivery_id: int, timeout: float = 20) -> Delivery:
    return wait_until(
        lambda: (d := Delivery.objects.get(pk=delivery_id)).is_final and d,
        timeout=timeout,
        what=f"delivery {delivery_id} to end",
    )


def test_receiver_gets_the_signed_event_once_even_when_the_first_attempt_failed(
    worker, make_user, make_endpoint, receiver
):
    user = make_user()
    endpoint = make_endpoint(user, "/fail-once", events=("prompt.completed",))

    [delivery] = emit(user, payload={"prompt_id": 7, "status": "COMPLETED", "text": "héllo"})
    done = wait_final(delivery.pk)

    assert done.state == "DELIVERED" and done.attempts == 2 and done.status_code == 200
    first, second = receiver.received("/fail-once")
    assert (first.status, second.status) == (500, 200)
    for request in (first, second):
        assert verify(endpoint.secret, request.headers, request.body)
        assert not verify("whsec_wrong", request.headers, request.body)
        assert request.headers["X-Webhook-Event"] == "prompt.completed"
        assert request.headers["X-Webhook-Id"] == str(delivery.event_id)
    assert first.body == second.body  # the same event, byte for byte
    body = json.loads(second.body)
    assert body["id"] == str(delivery.event_id) and body["event"] == "prompt.completed"
    assert body["data"] == {"prompt_id": 7, "status": "COMPLETED", "text": "héllo"}
    # A second copy of the task (a broker redelivery) finds it delivered and posts nothing.
    celery_app.send_task(task_names.DELIVER_WEBHOOK, args=[delivery.pk], queue=queues.NOTIFICATIONS)
    time.sleep(1)
    accepted = [r for r in receiver.received() if r.status == 200]
    assert len(accepted) == 1
    assert TaskRecord.objects.get(target_id=str(delivery.pk), target_type="notifications.delivery").state == "SUCCESS"


def test_rate_limited_delivery_waits_out_retry_after(worker, make_user, make_endpoint, receiver):
    user = make_user()
    make_endpoint(user, "/ratelimit-once")

    [delivery] = emit(user)
    done = wait_final(delivery.pk)

    first, second = receiver.received("/ratelimit-once")
    assert done.state == "DELIVERED" and done.attempts == 2
    assert (first.status, second.status) == (429, 200)
    assert int(second.headers["X-Webhook-Timestamp"]) - int(first.headers["X-Webhook-Timestamp"]) >= 1


def test_a_redirect_is_not_followed(worker, make_user, make_endpoint, receiver):
    user = make_user()
    make_endpoint(user, f"/redirect?to={receiver.url('/elsewhere')}")

    [delivery] = emit(user)
    done = wait_final(delivery.pk)

    assert done.state == "FAILED" and done.attempts == 1 and done.status_code == 302
    assert "redirects are not followed" in done.last_error
    assert len(receiver.received("/redirect")) == 1
    assert receiver.received("/elsewhere") == []


def test_a_client_error_is_not_retried_and_server_errors_are_retried_until_the_last_attempt(
    worker, make_user, make_endpoint, receiver, settings
):
    settings.WEBHOOKS_MAX_ATTEMPTS = 3  # stored on each delivery when it is recorded (here)
    user = make_user()
    make_endpoint(user, "/status/404", events=("prompt.failed",))
    make_endpoint(user, "/status/503", events=("prompt.failed",))

    deliveries = emit(user, event="prompt.failed")
    done = {d.endpoint.url.rsplit("/", 1)[1]: wait_final(d.pk) for d in deliveries}

    assert done["404"].state == "FAILED" and done["404"].attempts == 1 and done["404"].status_code == 404
    assert done["503"].state == "FAILED" and done["503"].attempts == 3
    assert done["503"].last_error.startswith("Gave up after 3 attempts. The receiver answered HTTP 503")
    assert len(receiver.received("/status/503")) == 3


def test_endpoint_failing_repeatedly_is_disabled_and_its_owner_told(
    worker, make_user, client_for, make_endpoint, receiver
):
    user = make_user()
    user.email = "owner@example.com"
    user.save()
    endpoint = make_endpoint(user, "/status/400")

    deliveries = [emit(user)[0] for _ in range(3)]  # WEBHOOKS_DISABLE_AFTER_FAILURES is 3 in the worker
    for delivery in deliveries:
        wait_final(delivery.pk)
    endpoint.refresh_from_db()

    assert not endpoint.is_active and endpoint.disabled_at is not None
    assert "3 deliveries in a row failed" in endpoint.disabled_reason
    notice = wait_until(
        lambda: Notification.objects.filter(user=user, event="webhook.disabled", email_state="SENT").first(),
        what="the owner's notice to be emailed",
    )
    assert endpoint.url in notice.body
    assert "Subject: [AI tasks] Your webhook endpoint was disabled" in worker.log()  # the console backend
    assert emit(user) == []  # a disabled endpoint gets nothing more
    api = client_for(user)
    shown = api.get(f"/api/v1/webhooks/{endpoint.pk}/").json()
    assert shown["is_active"] is False and shown["disabled_reason"] == endpoint.disabled_reason
    listed = api.get("/api/v1/notifications/").json()
    assert [n["event"] for n in listed["notifications"]] == ["webhook.disabled"]
    assert [d["state"] for d in listed["deliveries"]] == ["FAILED"] * 3


def test_send_query_result_to_users_task_reaches_each_users_webhooks(worker, make_user, make_endpoint, receiver):
    first, second, unsubscribed = make_user(), make_user(), make_user()
    for user in (first, second):
        make_endpoint(user, "/ok", events=("query.completed",))
    make_endpoint(unsubscribed, "/ok", events=("prompt.completed",))

    with transaction.atomic():
        task_dispatch(
            name=task_names.SEND_QUERY_RESULT_TO_USERS,
            queue=queues.NOTIFICATIONS,
            kwargs={"user_ids": [first.pk, second.pk, unsubscribed.pk], "payload": {"question": "why?"}},
        )

    wait_until(lambda: len(receiver.received("/ok")) == 2, what="two query results")
    time.sleep(0.5)
    bodies = [json.loads(r.body) for r in receiver.received("/ok")]
    assert {b["event"] for b in bodies} == {"query.completed"} and len(bodies) == 2
    assert all(b["data"] == {"question": "why?"} for b in bodies)


def test_an_address_that_became_internal_is_refused_at_delivery_time(make_user, make_endpoint, receiver, settings):
    user = make_user()
    endpoint = make_endpoint(user)  # accepted while private networks were allowed
    endpoint.url = receiver.url("/ok").replace("127.0.0.1", "localhost")
    endpoint.save()
    [delivery] = notification_event_emit(user=user, event="prompt.completed", payload={})
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False  # as if the name now pointed inside

    outcome = webhook_delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert outcome.state == "FAILED" and outcome.retry_in is None
    assert delivery.state == "FAILED" and "resolves to 127.0.0.1" in delivery.last_error
    assert receiver.received() == []


def test_retry_delays_back_off_with_jitter_and_stay_well_below_the_visibility_timeout(settings):
    settings.WEBHOOKS_RETRY_BASE_DELAY_SECONDS = 10
    settings.WEBHOOKS_RETRY_MAX_DELAY_SECONDS = 10**6
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}

    delays = [retry_delay(attempt=attempt) for attempt in range(1, 30)]

    assert retry_delay_cap() <= 3600 / 4
    assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20
    assert max(delays) <= retry_delay_cap()
    assert retry_delay(attempt=1, retry_after=10**6) == retry_delay_cap()
    assert retry_delay(attempt=1, retry_after=30) == 30
