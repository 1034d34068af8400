"""Reactions to the dispatch layer's signals."""

import contextlib
from typing import Any

from django.dispatch import receiver

from jobs.models import TaskRecord
from jobs.signals import task_record_abandoned, task_record_revoked
from prompts.models import PromptRequest
from prompts.services import PromptConflict, prompt_request_cancel, prompt_request_fail

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
