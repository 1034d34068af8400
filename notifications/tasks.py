"""Notification tasks: thin wrappers over the services (ids in, early return when done)."""

import smtplib
from typing import Any

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from jobs import queues
from jobs.exceptions import TaskFailed
from notifications import task_names
from notifications.events import QUERY_COMPLETED
from notifications.models import Delivery
from notifications.services import (
    delivery_fail,
    fan_out_batch_run,
    fan_out_fail,
    notification_email_fail,
    notification_emails_send,
    notification_event_emit,
    system_notification_send,
    usage_statistics_send,
    webhook_delivery_attempt,
)
from users.models import User

DATABASE_ERRORS = (OperationalError, InterfaceError)
# A database restart is transient: try again shortly (well under the visibility timeout).
DATABASE_RETRY = {"retry_backoff": 2, "retry_backoff_max": 60, "retry_jitter": True, "retry_kwargs": {"max_retries": 5}}


def _error_text(exc: BaseException) -> str:
    return f"Internal error: {type(exc).__name__}: {exc}"


class DeliveryTask(Task):
    """Whatever ends the task in failure also ends its delivery, never left open for ever."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if args and not isinstance(exc, TaskFailed):
            delivery_fail(delivery_id=args[0], error=_error_text(exc))


@shared_task(
    base=DeliveryTask,
    bind=True,
    name=task_names.DELIVER_WEBHOOK,
    queue=queues.NOTIFICATIONS,
    throws=(TaskFailed,),
    max_retries=None,  # the delivery's own max_attempts bounds the retries
    autoretry_for=DATABASE_ERRORS,
    **DATABASE_RETRY,
)
def deliver_webhook(self: Task, delivery_id: int) -> dict[str, Any]:
    """Attempt one webhook delivery; retry it later (countdown) when the receiver may recover."""
    outcome = webhook_delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    if outcome.attempted and outcome.state == Delivery.State.FAILED:
        raise TaskFailed(outcome.detail)
    return {"delivery_id": delivery_id, "state": outcome.state, "attempted": outcome.attempted}


class EmailTask(Task):
    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if args:
            notification_email_fail(notification_id=args[0], error=_error_text(exc))


@shared_task(
    base=EmailTask,
    name=task_names.SEND_NOTIFICATION_EMAIL,
    queue=queues.NOTIFICATIONS,
    # The mail server being away is transient (smtplib's errors are OSErrors too).
    autoretry_for=(OSError, smtplib.SMTPException, *DATABASE_ERRORS),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def send_notification_email(notification_id: int) -> dict[str, int]:
    """Email one notification (nothing if it was sent already or is not wanted)."""
    return {"sent": notification_emails_send(notification_ids=[notification_id])}


@shared_task(name=task_names.SEND_QUERY_RESULT_TO_USERS, queue=queues.NOTIFICATIONS)
def send_query_result_to_users(user_ids: list[int], payload: dict[str, Any], event: str = QUERY_COMPLETED) -> dict:
    """Emit `event` with `payload` to each user's subscribed webhooks (and email, if wanted)."""
    deliveries = 0
    for user in User.objects.filter(pk__in=user_ids, is_active=True):
        deliveries += len(notification_event_emit(user=user, event=event, payload=payload))
    return {"deliveries": deliveries}


@shared_task(name=task_names.SEND_USAGE_STATISTICS, queue=queues.NOTIFICATIONS)
def send_usage_statistics() -> dict[str, Any]:
    """Hourly: start sending each user with a statistics webhook their numbers for today."""
    fan_out = usage_statistics_send()
    return {"fan_out_id": fan_out.pk if fan_out else None, "started": fan_out is not None}


@shared_task(name=task_names.SEND_SYSTEM_NOTIFICATION, queue=queues.NOTIFICATIONS)
def send_system_notification(system_notification_id: int) -> dict[str, Any]:
    """Start sending a system notification to its users, in batches."""
    fan_out = system_notification_send(system_notification_id=system_notification_id)
    return {"fan_out_id": fan_out.pk if fan_out else None, "started": fan_out is not None}


class FanOutTask(Task):
    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if args:
            fan_out_fail(fan_out_id=args[0], error=_error_text(exc))


@shared_task(
    base=FanOutTask,
    bind=True,
    name=task_names.FAN_OUT_BATCH,
    queue=queues.NOTIFICATIONS,
    max_retries=None,  # waiting for open deliveries to drain; each wait is short
    autoretry_for=(OSError, smtplib.SMTPException, *DATABASE_ERRORS),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    retry_kwargs={"max_retries": 5},
)
def fan_out_batch(self: Task, fan_out_id: int, after_user_id: int) -> dict[str, Any]:
    """One batch of a fan-out; it dispatches the next batch itself."""
    outcome = fan_out_batch_run(fan_out_id=fan_out_id, after_user_id=after_user_id)
    if outcome.wait is not None:
        raise self.retry(countdown=outcome.wait)
    return {"recipients": outcome.recipients, "done": outcome.done, "skipped": outcome.skipped}
