"""Reads for notifications, always scoped to who asks; set-based reads for the fan-outs."""

from datetime import date
from typing import Any

from django.db.models import QuerySet

from notifications.events import USAGE_STATISTICS
from notifications.models import Delivery, Notification, SystemNotification, WebhookEndpoint
from users.models import UsageDaily, User

EMPTY_USAGE: dict[str, Any] = {"requests": 0, "completed": 0, "failed": 0, "tokens": 0, "mean_latency_ms": None}


def webhook_endpoint_list(*, user: User) -> QuerySet[WebhookEndpoint]:
    """The user's own endpoints (staff too: endpoints carry secrets and are nobody else's business)."""
    return WebhookEndpoint.objects.filter(owner=user)


def notification_list(*, user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user)


def delivery_list(*, user: User) -> QuerySet[Delivery]:
    return Delivery.objects.filter(endpoint__owner=user).select_related("endpoint")


def system_notification_list() -> QuerySet[SystemNotification]:
    return SystemNotification.objects.select_related("tier", "fan_out")


def usage_statistics_subscriber_ids(*, after_user_id: int, limit: int) -> list[int]:
    """The next `limit` user ids above `after_user_id` with an active statistics endpoint (one query)."""
    return list(
        WebhookEndpoint.objects.filter(
            is_active=True, events__contains=[USAGE_STATISTICS], owner__is_active=True, owner_id__gt=after_user_id
        )
        .order_by("owner_id")
        .values_list("owner_id", flat=True)
        .distinct()[:limit]
    )


def usage_statistics_endpoints(*, user_ids: list[int]) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(owner_id__in=user_ids, is_active=True, events__contains=[USAGE_STATISTICS])


def usage_for_day(*, user_ids: list[int], day: date) -> dict[int, dict[str, Any]]:
    """Each user's numbers for `day` from users' UsageDaily (one query); users without a row are absent."""
    rows = UsageDaily.objects.filter(user_id__in=user_ids, date=day)
    return {
        row.user_id: {
            "requests": row.requests,
            "completed": row.completed,
            "failed": row.failed,
            "tokens": row.tokens,
            "mean_latency_ms": row.mean_latency_ms,
        }
        for row in rows
    }
