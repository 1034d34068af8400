"""Messages to many users through a real worker: exactly the right users, in batches, once."""

import json
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from conftest import wait_until
from jobs import queues
from jobs.models import TaskRecord
from jobs.schedules import periodic_jobs_ensure
from jobs.services import task_dispatch
from notifications import task_names
from notifications.models import Delivery, FanOut, Notification, SystemNotification
from notifications.services import email_preferences_set, fan_out_batch_run, usage_statistics_send
from users.models import UsageDaily


def with_email(user):
    user.email = f"{user.username}@example.com"
    user.save()
    return user


def test_system_notification_to_a_tier_reaches_exactly_that_tiers_users_in_batches(
    worker, make_user, client_for, make_endpoint, receiver
):
    staff = make_user(staff=True)  # free tier, like `others`
    others = [with_email(make_user(tier="free")) for _ in range(3)]
    pro = [with_email(make_user(tier="pro")) for _ in range(5)]
    email_preferences_set(user=pro[0], preferences={"system": False})
    endpoint = make_endpoint(pro[1], "/ok", events=("system",))
    make_endpoint(others[0], "/ok", events=("system",))

    accepted = client_for(staff).post(
        "/api/v1/notifications/system/", {"title": "Pro news", "body": "Faster models.", "tier": "pro"}, format="json"
    )

    assert accepted.status_code == 202, accepted.content
    status_url = accepted.json()["status_url"]
    wait_until(lambda: client_for(staff).get(status_url).json()["status"] == "DONE", what="the fan-out to finish")
    assert client_for(staff).get(status_url).json()["recipients"] == 5
    notified = Notification.objects.filter(system_notification_id=accepted.json()["id"])
    assert sorted(notified.values_list("user_id", flat=True)) == sorted(u.pk for u in pro)
    emailed = dict(notified.values_list("user_id", "email_state"))
    assert emailed.pop(pro[0].pk) == "NOT_WANTED"  # opted out
    assert set(emailed.values()) == {"SENT"}
    fan_out = FanOut.objects.get(system_notification_id=accepted.json()["id"])
    assert fan_out.batches == 3  # 5 users, NOTIFICATIONS_BATCH_SIZE 2 in the worker: 2 + 2 + 1
    batches = TaskRecord.objects.filter(name=task_names.FAN_OUT_BATCH, target_id=str(fan_out.pk))
    assert sorted(r.args[1] for r in batches) == [0, pro[1].pk, pro[3].pk]  # keyset: after the last id
    [delivered] = wait_until(lambda: receiver.received("/ok"), what="the system webhook")
    assert json.loads(delivered.body)["data"]["title"] == "Pro news"
    assert Delivery.objects.get().endpoint == endpoint


def test_a_batch_message_that_arrives_twice_changes_nothing_the_second_time(make_user, settings):
    settings.NOTIFICATIONS_BATCH_SIZE = 2
    users = [make_user() for _ in range(3)]
    message = SystemNotification.objects.create(title="Hello", body="All of you.")
    fan_out = FanOut.objects.create(kind="system", key="test", system_notification=message)  # run here, not sent

    first = fan_out_batch_run(fan_out_id=fan_out.pk, after_user_id=0)
    copy = fan_out_batch_run(fan_out_id=fan_out.pk, after_user_id=0)
    last = fan_out_batch_run(fan_out_id=fan_out.pk, after_user_id=users[1].pk)

    assert (first.recipients, first.done) == (2, False)
    assert copy.skipped
    assert (last.recipients, last.done) == (1, True)
    assert sorted(Notification.objects.values_list("user_id", flat=True)) == [u.pk for u in users]


def test_hourly_statistics_send_each_subscriber_their_numbers_for_today_once(
    worker, make_user, make_endpoint, receiver
):
    busy, idle, unsubscribed = make_user(), make_user(), make_user()
    make_endpoint(busy, "/ok", events=("usage.statistics",))
    make_endpoint(idle, "/ok", events=("usage.statistics", "system"))
    make_endpoint(unsubscribed, "/ok", events=("prompt.completed",))
    today = timezone.localdate()
    UsageDaily.objects.create(
        user=busy, date=today, requests=5, completed=4, failed=1, tokens=900, total_duration_ms=800
    )
    UsageDaily.objects.create(user=busy, date=today - timedelta(days=1), requests=50)

    with transaction.atomic():
        task_dispatch(name=task_names.SEND_USAGE_STATISTICS, queue=queues.NOTIFICATIONS)

    fan_out = wait_until(lambda: FanOut.objects.filter(kind="usage.statistics", state="DONE").first(), what="stats")
    wait_until(lambda: len(receiver.received("/ok")) == 2, what="two statistics deliveries")
    by_user = {}
    for request in receiver.received("/ok"):
        body = json.loads(request.body)
        assert body["event"] == "usage.statistics"
        by_user[Delivery.objects.get(event_id=body["id"], payload=body["data"]).endpoint.owner_id] = body["data"]
    assert by_user[busy.pk] == {
        "date": today.isoformat(),
        "requests": 5,
        "completed": 4,
        "failed": 1,
        "tokens": 900,
        "mean_latency_ms": 200,
    }
    assert by_user[idle.pk]["requests"] == 0 and by_user[idle.pk]["mean_latency_ms"] is None
    assert unsubscribed.pk not in by_user
    assert usage_statistics_send(now=fan_out.started_at) is None  # a second beat in the same hour


def test_hourly_statistics_are_a_periodic_job_in_beats_tables(db):
    periodic_jobs_ensure()

    job = PeriodicTask.objects.get(name="send-statistics")
    assert job.task == task_names.SEND_USAGE_STATISTICS and job.queue == queues.NOTIFICATIONS
    assert (job.crontab.minute, job.crontab.hour) == ("0", "*")
