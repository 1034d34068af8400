"""Tell one user that something happened: webhooks of theirs that listen, and email if wanted."""

import json
import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction

from notifications.events import WEBHOOK_EVENTS
from notifications.models import Delivery, WebhookEndpoint
from notifications.services.deliveries import deliveries_record
from notifications.services.emails import email_wanted, notification_create
from users.models import User

EVENT_TITLES = {
    "prompt.completed": "Your prompt is done",
    "prompt.failed": "Your prompt failed",
    "query.completed": "Your question was answered",
    "document.synced": "Your document is ready for search",
    "usage.statistics": "Your usage today",
    "system": "A message from the operators",
}


def _json_safe(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as plain JSON types (datetimes, UUIDs and decimals become strings)."""
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, not {type(payload).__name__}")
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def notification_event_emit(
    *, user: User, event: str, payload: dict[str, Any], target: models.Model | None = None
) -> list[Delivery]:
    """Record a delivery of `event` for each of `user`'s active endpoints subscribed to it, and a
    notification (emailed) if the user wants this event by email; all sent after commit.

    `payload` (a JSON-able dict) is sent as the body's `data`. Call it inside the transaction that
    makes the event true (e.g. the one that stores a prompt's response), so that a task running
    twice, which returns early the second time, emits once. Returns the deliveries recorded.
    """
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown event {event!r}; known: {', '.join(WEBHOOK_EVENTS)}")
    data = _json_safe(payload)
    event_id = uuid.uuid4()
    target_type = target._meta.label_lower if target is not None else ""
    target_id = str(target.pk) if target is not None else ""
    # Part of the caller's transaction, without a savepoint of its own (two statements less per
    # finished prompt); the checks that may raise are done above, before it starts.
    with transaction.atomic(savepoint=False):
        endpoints = WebhookEndpoint.objects.filter(owner=user, is_active=True, events__contains=[event])
        deliveries = deliveries_record(
            [
                Delivery(
                    endpoint=endpoint,
                    event=event,
                    event_id=event_id,
                    payload=data,
                    target_type=target_type,
                    target_id=target_id,
                )
                for endpoint in endpoints
            ]
        )
        if email_wanted(user=user, event=event):
            title = EVENT_TITLES.get(event, event)
            if target is not None:
                title = f"{title} ({target._meta.verbose_name} #{target.pk})"
            notification_create(user=user, event=event, title=title, payload=data, event_id=event_id)
    return deliveries
