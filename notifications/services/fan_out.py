"""Messages to many users (system notifications, hourly statistics), walked in batches.

A fan-out is a row with a cursor: each batch task takes the next NOTIFICATIONS_BATCH_SIZE users
with an id above the cursor (keyset pagination: one indexed query however far it has come),
records their notifications and deliveries in a few set-based queries, moves the cursor and
dispatches the next batch in the same transaction. So at any moment one batch message is in
flight per fan-out, plus the webhook deliveries it created, and those are capped too: a batch
waits while NOTIFICATIONS_MAX_DELIVERIES_IN_FLIGHT of the fan-out's deliveries are still open.
A million users means two thousand batches one after the other, never a million messages.

A batch whose message arrives twice finds the cursor moved and returns; a batch that fails
half-way rolls back and runs again; unique constraints make a second notification or delivery
for the same user and event impossible.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import queues
from jobs.services import task_dispatch
from notifications import events, selectors, task_names
from notifications.models import Delivery, FanOut, Notification, SystemNotification, WebhookEndpoint
from notifications.services.deliveries import deliveries_record
from notifications.services.emails import notification_emails_send, users_with_email_wanted
from users.models import Tier, User

Kind = FanOut.Kind


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch task did; `wait` set means: too many deliveries open, run again after that long."""

    recipients: int = 0
    done: bool = False
    skipped: bool = False
    wait: float | None = None


def _batch_dispatch(fan_out: FanOut, after_user_id: int) -> None:
    task_dispatch(
        name=task_names.FAN_OUT_BATCH,
        queue=queues.NOTIFICATIONS,
        args=[fan_out.pk, after_user_id],
        target=fan_out,
    )


@transaction.atomic
def fan_out_start(*, kind: str, key: str, system_notification: SystemNotification | None = None) -> FanOut | None:
    """Start a fan-out and dispatch its first batch; None if one with this key exists already."""
    fan_out, created = FanOut.objects.get_or_create(
        key=key, defaults={"kind": kind, "system_notification": system_notification}
    )
    if not created:
        return None
    _batch_dispatch(fan_out, 0)
    return fan_out


@transaction.atomic
def system_notification_create(
    *, title: str, body: str, tier: Tier | None = None, created_by: User | None = None
) -> tuple[SystemNotification, str]:
    """Create a system notification and dispatch its sending; returns it and the task id."""
    notification = SystemNotification.objects.create(title=title, body=body, tier=tier, created_by=created_by)
    task_id = system_notification_send_request(system_notification=notification)
    return notification, task_id


@transaction.atomic
def system_notification_send_request(*, system_notification: SystemNotification) -> str:
    """Dispatch the sending of a system notification; returns the task id ('' if already sent)."""
    locked = SystemNotification.objects.select_for_update().get(pk=system_notification.pk)
    if locked.sent_at is not None:
        return ""
    locked.sent_at = timezone.now()
    locked.save(update_fields=["sent_at"])
    record = task_dispatch(
        name=task_names.SEND_SYSTEM_NOTIFICATION,
        queue=queues.NOTIFICATIONS,
        args=[locked.pk],
        owner=locked.created_by,
        target=locked,
    )
    system_notification.sent_at = locked.sent_at
    return str(record.id)


def system_notification_send(*, system_notification_id: int) -> FanOut | None:
    """Start the fan-out of a system notification (in the worker); None if it was started already."""
    notification = SystemNotification.objects.filter(pk=system_notification_id).first()
    if notification is None:
        return None
    return fan_out_start(kind=Kind.SYSTEM, key=f"system:{notification.pk}", system_notification=notification)


def usage_statistics_send(*, now: datetime | None = None) -> FanOut | None:
    """Start this hour's statistics fan-out; None if this hour's already ran (e.g. two beats)."""
    hour = (now or timezone.now()).astimezone(timezone.get_current_timezone()).strftime("%Y-%m-%dT%H")
    return fan_out_start(kind=Kind.USAGE_STATISTICS, key=f"usage.statistics:{hour}")


def fan_out_batch_run(*, fan_out_id: int, after_user_id: int) -> BatchOutcome:
    """Run the batch of users after `after_user_id`, then dispatch the next one (or finish)."""
    with transaction.atomic():
        fan_out = FanOut.objects.select_for_update().filter(pk=fan_out_id).first()
        if fan_out is None or fan_out.state != FanOut.State.RUNNING or fan_out.cursor_user_id != after_user_id:
            return BatchOutcome(skipped=True)  # a copy of a batch that already ran
        in_flight = Delivery.objects.filter(fan_out=fan_out, state__in=Delivery.OPEN_STATES).count()
        if in_flight >= settings.NOTIFICATIONS_MAX_DELIVERIES_IN_FLIGHT:
            return BatchOutcome(wait=settings.NOTIFICATIONS_FAN_OUT_WAIT_SECONDS)
        size = settings.NOTIFICATIONS_BATCH_SIZE
        batch = _system_batch if fan_out.kind == Kind.SYSTEM else _statistics_batch
        user_ids = batch(fan_out, after_user_id, size)
        fan_out.batches += 1
        fan_out.recipients += len(user_ids)
        if len(user_ids) < size:
            fan_out.state = FanOut.State.DONE
            fan_out.finished_at = timezone.now()
        else:
            fan_out.cursor_user_id = user_ids[-1]
            _batch_dispatch(fan_out, fan_out.cursor_user_id)
        fan_out.save()
        return BatchOutcome(recipients=len(user_ids), done=fan_out.state == FanOut.State.DONE)


def fan_out_fail(*, fan_out_id: int, error: str) -> None:
    FanOut.objects.filter(pk=fan_out_id, state=FanOut.State.RUNNING).update(
        state=FanOut.State.FAILED, error=error, finished_at=timezone.now()
    )


def _system_batch(fan_out: FanOut, after_user_id: int, size: int) -> list[int]:
    """Notify the next users (of the tier, if one is chosen), their webhooks and, by email, those who want it."""
    message = fan_out.system_notification
    users = User.objects.filter(is_active=True, pk__gt=after_user_id)
    if message.tier_id is not None:
        users = users.filter(tier_id=message.tier_id)
    rows = list(
        users_with_email_wanted(users, event=events.SYSTEM).order_by("pk").values_list("pk", "email_wanted")[:size]
    )
    user_ids = [pk for pk, _ in rows]
    Notification.objects.bulk_create(
        [
            Notification(
                user_id=pk,
                event=events.SYSTEM,
                event_id=fan_out.event_id,
                title=message.title,
                body=message.body,
                system_notification=message,
                email_state=Notification.EmailState.PENDING if wanted else Notification.EmailState.NOT_WANTED,
            )
            for pk, wanted in rows
        ],
        ignore_conflicts=True,
    )
    payload = {"title": message.title, "body": message.body, "system_notification_id": message.pk}
    endpoints = WebhookEndpoint.objects.filter(owner_id__in=user_ids, is_active=True, events__contains=[events.SYSTEM])
    deliveries_record([_fan_out_delivery(fan_out, endpoint, payload) for endpoint in endpoints])
    # Email goes out in the batch, through one connection: the next batch waits for it.
    pending_email = Notification.objects.filter(
        event_id=fan_out.event_id, user_id__in=user_ids, email_state=Notification.EmailState.PENDING
    ).values_list("pk", flat=True)
    notification_emails_send(notification_ids=list(pending_email))
    return user_ids


def _statistics_batch(fan_out: FanOut, after_user_id: int, size: int) -> list[int]:
    """Send the next users with a statistics webhook their numbers for today."""
    endpoints_by_user: dict[int, list[WebhookEndpoint]] = {}
    user_ids = selectors.usage_statistics_subscriber_ids(after_user_id=after_user_id, limit=size)
    for endpoint in selectors.usage_statistics_endpoints(user_ids=user_ids):
        endpoints_by_user.setdefault(endpoint.owner_id, []).append(endpoint)
    day = timezone.localdate(fan_out.started_at)
    usage = selectors.usage_for_day(user_ids=user_ids, day=day)
    rows = []
    for user_id, endpoints in endpoints_by_user.items():
        payload = {"date": day.isoformat(), **usage.get(user_id, selectors.EMPTY_USAGE)}
        rows += [_fan_out_delivery(fan_out, endpoint, payload) for endpoint in endpoints]
    deliveries_record(rows)
    return user_ids


def _fan_out_delivery(fan_out: FanOut, endpoint: WebhookEndpoint, payload: dict) -> Delivery:
    return Delivery(
        endpoint=endpoint,
        event=fan_out.kind,
        event_id=fan_out.event_id,
        payload=payload,
        fan_out=fan_out,
        target_type="notifications.fanout",
        target_id=str(fan_out.pk),
    )
