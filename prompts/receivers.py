"""Reactions to the dispatch layer's signals, and the retry it may ask of a prompt request."""

import contextlib
from typing import Any

from django.dispatch import receiver

from jobs.exceptions import RetryRefused
from jobs.models import TaskRecord
from jobs.services import task_retry_handler_register
from jobs.signals import task_record_abandoned, task_record_revoked
from prompts.models import PromptRequest
from prompts.services import PromptConflict, prompt_request_cancel, prompt_request_fail, prompt_request_retry
from users.exceptions import DailyLimitExceeded

TARGET = "prompts.promptrequest"


@receiver(task_record_abandoned)
def _end_abandoned_request(sender: Any, record: TaskRecord, reason: str, **_: Any) -> None:
    if record.target_type == TARGET:
        prompt_request_fail(request_id=int(record.target_id), error=reason)


@receiver(task_record_revoked)
def _cancel_revoked_request(sender: Any, record: TaskRecord, by: Any = None, **_: Any) -> None:
    """Revoking a request's current task (from /tasks/{id}/revoke/) cancels the request."""
    if record.target_type != TARGET:
        return
    request = PromptRequest.objects.filter(pk=int(record.target_id), task_id=record.id).first()
    if request is not None and not request.is_final:
        with contextlib.suppress(PromptConflict):  # it finished in the meantime
            prompt_request_cancel(request_id=request.pk, by=by)


def _retry_for_operator(*, target_id: str, by: Any = None) -> PromptRequest:
    """The dashboard's retry of a failed task: the request's own retry (statuses, today's quota)."""
    try:
        return prompt_request_retry(request_id=int(target_id), by=by)
    except PromptConflict as exc:
        raise RetryRefused(str(exc)) from None
    except DailyLimitExceeded as exc:
        raise RetryRefused(str(exc.detail["detail"])) from None


task_retry_handler_register(TARGET, _retry_for_operator)
