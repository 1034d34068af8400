"""Webhook deliveries: record and dispatch them, attempt one (signed), decide retry or give up."""

import http.client
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.logs import REQUEST_ID_HEADER, request_id_get
from jobs import queues
from jobs.services import task_dispatch
from notifications import outbound, task_names
from notifications.models import Delivery
from notifications.services.endpoints import (
    webhook_endpoint_failure_record,
    webhook_endpoint_success_record,
    webhook_sign,
)

logger = logging.getLogger(__name__)
State = Delivery.State
# Answers worth trying again: the receiver is overloaded, down for a moment, or asks us to wait.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Outcome:
    """What one run of the delivery task did; `retry_in` set means: run again after that long."""

    state: str
    attempted: bool
    retry_in: float | None = None
    detail: str = ""


def delivery_dispatch(delivery: Delivery) -> None:
    """Send the delivery task once the current transaction commits (the one dispatch path)."""
    task_dispatch(
        name=task_names.DELIVER_WEBHOOK,
        queue=queues.NOTIFICATIONS,
        args=[delivery.pk],
        owner=delivery.endpoint.owner,
        target=delivery,
    )


def deliveries_record(rows: list[Delivery]) -> list[Delivery]:
    """Insert unsaved deliveries that share one event id, and dispatch the ones not sent yet.

    A row that already exists for its endpoint and event (a batch that ran twice) is not
    inserted again; a pending one is dispatched again, which the task's early return makes harmless.
    """
    if not rows:
        return []
    event_ids = {row.event_id for row in rows}
    if len(event_ids) != 1:
        raise ValueError("deliveries recorded together must share their event id")
    for row in rows:
        row.max_attempts = row.max_attempts or settings.WEBHOOKS_MAX_ATTEMPTS
    with transaction.atomic(savepoint=False):  # in the caller's transaction, if any
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
        endpoint_ids = [row.endpoint_id for row in rows]
        created = list(
            Delivery.objects.select_related("endpoint__owner").filter(
                event_id=event_ids.pop(), endpoint__in=endpoint_ids, state=State.PENDING, attempts=0
            )
        )
        for delivery in created:
            delivery_dispatch(delivery)
    return created


def delivery_body(delivery: Delivery) -> bytes:
    """The JSON body: the same bytes on every attempt (keys sorted, no spaces)."""
    envelope = {
        "id": str(delivery.event_id),
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def delivery_headers(delivery: Delivery, *, body: bytes, timestamp: int) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Id": str(delivery.event_id),
        "X-Webhook-Event": delivery.event,
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Attempt": str(delivery.attempts),
        "X-Signature": webhook_sign(secret=delivery.endpoint.secret, timestamp=timestamp, body=body),
    }
    if request_id_get():  # the API request that led to this event, to follow it across systems
        headers[REQUEST_ID_HEADER] = request_id_get()
    return headers


def retry_delay_cap() -> float:
    """The longest countdown a retry may have.

    A message waiting for its countdown is held unacknowledged by a worker; Redis hands it to
    another worker once the visibility timeout passes, so every countdown stays well below it
    (a quarter). It also stays below the sweeper's patience for a silent task (the hard time
    limit), so a retrying delivery is never mistaken for a lost one.
    """
    visibility_timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    return min(settings.WEBHOOKS_RETRY_MAX_DELAY_SECONDS, visibility_timeout / 4, settings.CELERY_TASK_TIME_LIMIT / 2)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds from now; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def retry_delay(*, attempt: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt: the receiver's Retry-After within bounds, else exponential
    backoff (base x 2^(attempt-1), capped) with jitter, so failed deliveries do not retry in step."""
    cap = retry_delay_cap()
    if retry_after is not None:
        return min(max(retry_after, settings.WEBHOOKS_RETRY_BASE_DELAY_SECONDS), cap)
    ceiling = min(cap, settings.WEBHOOKS_RETRY_BASE_DELAY_SECONDS * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class _Result:
    delivered: bool = False
    retryable: bool = False
    status_code: int | None = None
    error: str = ""
    retry_after: float | None = None


def _send(delivery: Delivery) -> _Result:
    """One HTTP attempt: resolve and check the URL again (DNS can change), then POST, signed."""
    timeout = settings.WEBHOOKS_TIMEOUT_SECONDS
    try:
        target = outbound.url_resolve(delivery.endpoint.url)
    except outbound.UnresolvableHost as exc:  # a DNS hiccup may pass
        return _Result(retryable=True, error=str(exc))
    except outbound.UnsafeURL as exc:
        return _Result(error=str(exc))
    body = delivery_body(delivery)
    headers = delivery_headers(delivery, body=body, timestamp=int(time.time()))
    try:
        answer = outbound.post(target, body=body, headers=headers, timeout=timeout)
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, TLS, garbage
        text = str(exc) or type(exc).__name__
        return _Result(retryable=True, error=f"Could not deliver to {target.host}: {type(exc).__name__}: {text}")
    if 200 <= answer.status < 300:
        return _Result(delivered=True, status_code=answer.status)
    detail = f"The receiver answered HTTP {answer.status}"
    if 300 <= answer.status < 400:
        detail += f" (redirects are not followed; Location: {answer.headers.get('location', '-')})"
    elif answer.body.strip():
        detail += f": {answer.body.strip()[:500]}"
    return _Result(
        retryable=answer.status in RETRYABLE_STATUSES,
        status_code=answer.status,
        error=detail,
        retry_after=retry_after_seconds(answer.headers.get("retry-after")),
    )


def webhook_delivery_attempt(*, delivery_id: int) -> Outcome:
    """Attempt a delivery once, if it is still open and due; record what happened.

    The delivery's row stays locked during the HTTP call. That lock is what makes a second copy
    of the task (a redelivered message, a sweeper's resend, an operator's "retry now") skip the
    delivery instead of posting it twice at the same time; PostgreSQL releases it if the worker
    dies. The call is bounded by WEBHOOKS_TIMEOUT_SECONDS, so the lock is short-lived.
    """
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return Outcome(state="SKIPPED", attempted=False, detail="gone, or being attempted by another run")
        if delivery.is_final:
            return Outcome(state=delivery.state, attempted=False, detail="already final")
        now = timezone.now()
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
            return Outcome(state=delivery.state, attempted=False, detail="not due yet; another run is scheduled")
        if not delivery.endpoint.is_active:
            _finish(delivery, State.FAILED, error="The endpoint is disabled.")
            return Outcome(state=State.FAILED, attempted=False, detail=delivery.last_error)

        delivery.attempts += 1
        result = _send(delivery)
        delivery.status_code = result.status_code
        logger.info(
            "webhook delivery %s (%s) attempt %s to endpoint %s: %s",
            delivery.pk,
            delivery.event,
            delivery.attempts,
            delivery.endpoint_id,
            f"HTTP {result.status_code}" if result.status_code else result.error,
        )
        if result.delivered:
            delivery.delivered_at = timezone.now()
            _finish(delivery, State.DELIVERED, error="")
            webhook_endpoint_success_record(endpoint_id=delivery.endpoint_id)
            return Outcome(state=State.DELIVERED, attempted=True)
        if result.retryable and delivery.attempts < delivery.max_attempts:
            delay = retry_delay(attempt=delivery.attempts, retry_after=result.retry_after)
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            _finish(delivery, State.RETRYING, error=result.error)
            return Outcome(state=State.RETRYING, attempted=True, retry_in=delay, detail=result.error)
        error = result.error
        if result.retryable:
            error = f"Gave up after {delivery.attempts} attempts. {error}"
        _finish(delivery, State.FAILED, error=error)
        webhook_endpoint_failure_record(endpoint_id=delivery.endpoint_id, error=error)
        return Outcome(state=State.FAILED, attempted=True, detail=error)


def _finish(delivery: Delivery, state: str, *, error: str) -> None:
    delivery.state = state
    delivery.last_error = error
    if state != State.RETRYING:
        delivery.next_attempt_at = None
    delivery.save(
        update_fields=[
            "state",
            "attempts",
            "status_code",
            "last_error",
            "next_attempt_at",
            "delivered_at",
            "updated_at",
        ]
    )


@transaction.atomic
def delivery_retry_now(*, delivery: Delivery) -> bool:
    """Attempt a delivery again now, with a fresh round of attempts (an operator's action).

    False when it was delivered already or its endpoint is disabled.
    """
    delivery = Delivery.objects.select_for_update(of=("self",)).select_related("endpoint__owner").get(pk=delivery.pk)
    if delivery.state == State.DELIVERED or not delivery.endpoint.is_active:
        return False
    delivery.state = State.PENDING if delivery.attempts == 0 else State.RETRYING
    delivery.next_attempt_at = None
    delivery.max_attempts = delivery.attempts + settings.WEBHOOKS_MAX_ATTEMPTS
    delivery.save(update_fields=["state", "next_attempt_at", "max_attempts", "updated_at"])
    delivery_dispatch(delivery)
    return True


def delivery_fail(*, delivery_id: int, error: str) -> None:
    """End an open delivery FAILED with `error` (its task gave up or was abandoned)."""
    updated = Delivery.objects.filter(pk=delivery_id, state__in=Delivery.OPEN_STATES).update(
        state=State.FAILED, last_error=error, next_attempt_at=None, updated_at=timezone.now()
    )
    if updated:
        logger.info("delivery %s failed: %s", delivery_id, error)
