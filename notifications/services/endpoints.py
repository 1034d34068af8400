"""Webhook endpoints: create (checked URL, secret shown once), delete, sign, disable when failing."""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from notifications import outbound
from notifications.events import WEBHOOK_DISABLED, WEBHOOK_EVENTS
from notifications.models import WebhookEndpoint
from notifications.services.emails import notification_create
from users.models import User

SECRET_PREFIX = "whsec_"


def webhook_secret_generate() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def webhook_sign(*, secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Signature value: HMAC-SHA256 with the endpoint's secret over "{timestamp}.{body}"."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_url_check(url: str) -> None:
    """Refuse a URL that is not http(s) or whose host resolves to an internal address."""
    try:
        outbound.url_resolve(url)
    except outbound.UnsafeURL as exc:
        raise ValidationError({"url": str(exc)}) from None


def _events_clean(chosen: list[str]) -> list[str]:
    unknown = sorted(set(chosen) - set(WEBHOOK_EVENTS))
    if not chosen or unknown:
        problem = f"Unknown events: {', '.join(unknown)}. " if unknown else ""
        raise ValidationError({"events": f"{problem}Choose one or more of: {', '.join(WEBHOOK_EVENTS)}."})
    return [event for event in WEBHOOK_EVENTS if event in chosen]  # known order, no duplicates


@transaction.atomic
def webhook_endpoint_create(*, user: User, url: str, events: list[str], description: str = "") -> WebhookEndpoint:
    """Create an endpoint for `user`; its `secret` is readable on the returned object only."""
    chosen = _events_clean(events)
    if WebhookEndpoint.objects.filter(owner=user).count() >= settings.WEBHOOKS_MAX_ENDPOINTS_PER_USER:
        raise ValidationError(
            {"url": f"You already have {settings.WEBHOOKS_MAX_ENDPOINTS_PER_USER} endpoints; delete one first."}
        )
    webhook_url_check(url)
    endpoint = WebhookEndpoint(
        owner=user, url=url, events=chosen, description=description, secret=webhook_secret_generate()
    )
    endpoint.full_clean()
    endpoint.save()
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its delivery log (pending deliveries end with it)."""
    endpoint.delete()


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint) -> None:
    """Turn a disabled endpoint back on with a clean failure count (an operator's action)."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=True, consecutive_failures=0, disabled_at=None, disabled_reason=""
    )


def webhook_endpoint_success_record(*, endpoint_id: int) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id).exclude(consecutive_failures=0).update(consecutive_failures=0)


@transaction.atomic
def webhook_endpoint_failure_record(*, endpoint_id: int, error: str) -> bool:
    """Count a failed delivery; after WEBHOOKS_DISABLE_AFTER_FAILURES in a row, disable the endpoint
    and tell its owner (a notification, emailed unless they opted out). True if disabled now."""
    endpoint = WebhookEndpoint.objects.select_for_update(of=("self",)).select_related("owner").get(pk=endpoint_id)
    endpoint.consecutive_failures += 1
    fields = ["consecutive_failures"]
    disable = endpoint.is_active and endpoint.consecutive_failures >= settings.WEBHOOKS_DISABLE_AFTER_FAILURES
    if disable:
        endpoint.is_active = False
        endpoint.disabled_at = timezone.now()
        endpoint.disabled_reason = f"{endpoint.consecutive_failures} deliveries in a row failed; the last: {error}"
        fields += ["is_active", "disabled_at", "disabled_reason"]
    endpoint.save(update_fields=fields)
    if disable:
        notification_create(
            user=endpoint.owner,
            event=WEBHOOK_DISABLED,
            title="Your webhook endpoint was disabled",
            body=(
                f"We stopped sending events to {endpoint.url}: {endpoint.disabled_reason}\n"
                "Fix the receiver, then create the endpoint again (or ask us to enable it)."
            ),
            payload={"endpoint_id": endpoint.pk, "url": endpoint.url, "reason": endpoint.disabled_reason},
        )
    return disable
