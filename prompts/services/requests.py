"""The life of a prompt request: accept (any kind), cancel, retry, fail, count."""

import logging
import uuid
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.db import insert_values
from jobs import queues
from jobs.models import TaskRecord
from jobs.services import task_dispatch, task_dispatch_prepare, task_dispatched, task_revoke
from notifications.services import notification_event_emit
from prompts.models import Conversation, PromptRequest
from users.models import Tier, User
from users.services import (
    daily_limit_exceeded,
    daily_quota_consume,
    daily_quota_ctes,
    usage_daily_store,
    usage_record_finished,
    user_tier,
)

logger = logging.getLogger(__name__)
Status = PromptRequest.Status
PROCESS_TASK = "prompts.process_prompt_request"


def tier_models(tier: Tier) -> list[str]:
    """The chat models a tier may use."""
    configured = list(settings.AI_CHAT_MODELS)
    return [m for m in configured if m in tier.allowed_models] if tier.allowed_models else configured


def _validate_chat(*, tier: Tier, prompt_text: str, model: str) -> None:
    errors: dict[str, str] = {}
    allowed = tier_models(tier)
    if model not in allowed:
        errors["model"] = (
            f"Unknown or unavailable model {model!r} for the {tier.name} tier; choose one of: {', '.join(allowed)}."
        )
    if len(prompt_text) > tier.max_prompt_length:
        errors["prompt_text"] = (
            f"The prompt is {len(prompt_text)} characters; "
            f"the {tier.name} tier allows at most {tier.max_prompt_length}."
        )
    if errors:
        raise ValidationError(errors)


def prompt_request_create(
    *, user: User, prompt_text: str, model: str | None = None, conversation_id: int | None = None
) -> PromptRequest:
    """Accept a chat prompt (a turn of a conversation if one is named); sent after commit."""
    tier = user_tier(user)
    model = model or settings.AI_DEFAULT_CHAT_MODEL
    _validate_chat(tier=tier, prompt_text=prompt_text, model=model)
    fields = {"kind": PromptRequest.Kind.CHAT, "model": model, "prompt_text": prompt_text}
    if conversation_id is None:
        return request_accept(user=user, tier=tier, **fields)
    with transaction.atomic():  # the turn is written while its conversation is locked
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id, owner=user).first()
        if conversation is None or conversation.archived_at is not None:
            raise ValidationError({"conversation": f"No open conversation {conversation_id} of yours."})
        conversation.save(update_fields=["updated_at"])
        return request_accept(user=user, tier=tier, conversation=conversation, **fields)


def request_accept(*, user: User, tier: Tier, **fields: object) -> PromptRequest:
    """Count the request against today's limit, record it and its task: one statement.

    The quota (`daily_quota_ctes`), the request and its task record with its fair-share lane
    (`task_dispatch_prepare`) are written together or not at all, with no transaction of their
    own (inside a caller's transaction, they are part of it); the task is sent after the commit.
    429 when today's limit is used up.
    """
    task_id = uuid.uuid4()  # known before the record exists, so the request is written once
    request = PromptRequest(owner=user, task_id=task_id, **fields)
    columns, values, params = insert_values(request, prefix="p")
    quota, quota_params = daily_quota_ctes(user=user)
    dispatch = task_dispatch_prepare(
        name=PROCESS_TASK,
        queue=queues.prompt_queue_for(tier.queue_priority),
        owner=user,
        target=request,
        max_in_flight=tier.max_in_flight,
        weight=tier.fair_share_weight,
        task_id=task_id,
        after="request",
    )
    table = connection.ops.quote_name(PromptRequest._meta.db_table)
    sql = f"""
        WITH {quota}, request AS (
            INSERT INTO {table} ({columns}) SELECT {values} FROM counted RETURNING id
        ), {dispatch.ctes}
        SELECT request.id, {dispatch.columns} FROM request, {dispatch.tables}
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, **quota_params, **dispatch.params})
        row = cursor.fetchone()
    if row is None:
        raise daily_limit_exceeded(user=user)
    request.pk = row[0]
    request._state.adding, request._state.db = False, connection.alias
    task_dispatched(dispatch, row[1:], target_id=request.pk)
    return request


def _dispatch(request: PromptRequest, tier: Tier, *, task_id: uuid.UUID | None = None) -> None:
    record = task_dispatch(
        name=PROCESS_TASK,
        queue=queues.prompt_queue_for(tier.queue_priority),
        args=[request.pk],
        owner=request.owner,
        target=request,
        max_in_flight=tier.max_in_flight,
        weight=tier.fair_share_weight,
        task_id=task_id,
    )
    if request.task_id != record.id:
        request.task_id = record.id
        request.save(update_fields=["task_id"])


def prompt_event_emit(*, request: PromptRequest, completed: bool) -> None:
    """Tell the owner's webhooks (and email, if wanted) that a request finished.

    Called in the transaction that makes the request final, so it happens once per request.
    """
    if completed:
        event = "query.completed" if request.kind == PromptRequest.Kind.QUERY else "prompt.completed"
    else:
        event = "prompt.failed"
    response = getattr(request, "response", None) if completed else None
    payload = {
        "prompt_id": request.pk,
        "kind": request.kind,
        "status": request.status,
        "model": request.model,
        "completed_at": request.completed_at,
    }
    if response is not None:
        payload["text"] = response.text
        if response.result is not None:
            payload["result"] = response.result
    if not completed:
        payload["error"] = request.error
    notification_event_emit(user=request.owner, event=event, payload=payload, target=request)


class PromptConflict(Exception):
    """The request is not in a status that allows this action (409)."""


def prompt_request_cancel(*, request_id: int, by: User | None = None) -> PromptRequest:
    """Cancel a pending or running request: CANCELLED at once, its task revoked.

    A running provider call cannot be taken back, but its answer is thrown away: the task
    stores nothing for a request that is already final.
    """
    with transaction.atomic():
        request = PromptRequest.objects.select_for_update().get(pk=request_id)
        if request.is_final:
            raise PromptConflict(f"The request is already {request.status} and cannot be cancelled.")
        request.status = Status.CANCELLED
        request.error = f"Cancelled by {by.username}." if by is not None else "Cancelled."
        request.completed_at = timezone.now()
        request.save(update_fields=["status", "error", "completed_at"])
        task_id = request.task_id
    record = TaskRecord.objects.filter(pk=task_id).first() if task_id else None
    if record is not None:
        task_revoke(record=record, by=by)
    return request


@transaction.atomic
def prompt_request_retry(*, request_id: int, by: User | None = None) -> PromptRequest:
    """Send a FAILED or CANCELLED request again, as a new task; counts as a new request today."""
    request = PromptRequest.objects.select_for_update().select_related("owner").get(pk=request_id)
    if request.status not in (Status.FAILED, Status.CANCELLED):
        raise PromptConflict(f"Only failed or cancelled requests can be retried; this one is {request.status}.")
    daily_quota_consume(user=request.owner)
    request.status = Status.PENDING
    request.error = ""
    request.started_at = None
    request.completed_at = None
    request.save(update_fields=["status", "error", "started_at", "completed_at"])
    _dispatch(request, user_tier(request.owner))
    return request


def prompt_request_fail(*, request_id: int, error: str) -> PromptRequest | None:
    """End a request FAILED with a readable reason, unless it already ended."""
    with transaction.atomic():
        request = PromptRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or request.is_final:
            return request
        request.status = Status.FAILED
        request.error = error
        request.completed_at = timezone.now()
        request.save(update_fields=["status", "error", "completed_at"])
        usage_record_finished(user_id=request.owner_id, day=timezone.localdate(request.created_at), completed=False)
        prompt_event_emit(request=request, completed=False)
    logger.info("prompt request %s failed: %s", request_id, error)
    return request


def user_statistics_recompute(*, user_id: int, day: date | None = None) -> dict[str, int]:
    """Recompute one user's numbers for one day from their requests (idempotent repair).

    The numbers are normally kept exact as they happen (in the transaction that makes each
    request final); this rebuilds them from the requests themselves, e.g. after a manual fix.
    """
    day = day or timezone.localdate()
    start = timezone.make_aware(datetime.combine(day, time.min))
    requests = PromptRequest.objects.filter(
        owner_id=user_id, created_at__gte=start, created_at__lt=start + timedelta(days=1)
    )
    numbers = requests.aggregate(
        requests=Count("id"),
        completed=Count("id", filter=Q(status=Status.COMPLETED)),
        failed=Count("id", filter=Q(status=Status.FAILED)),
        tokens=Coalesce(Sum(F("response__prompt_tokens") + F("response__completion_tokens")), 0),
        total_duration_ms=Coalesce(Sum("response__duration_ms", filter=Q(status=Status.COMPLETED)), 0),
    )
    usage_daily_store(user_id=user_id, day=day, **numbers)
    return numbers
