"""Reactions to the dispatch layer's signals."""

from typing import Any

from django.dispatch import receiver

from jobs.models import TaskRecord
from jobs.signals import task_record_abandoned
from prompts.services import prompt_request_fail


@receiver(task_record_abandoned)
def _end_abandoned_request(sender: Any, record: TaskRecord, reason: str, **_: Any) -> None:
    if record.target_type == "prompts.promptrequest":
        prompt_request_fail(request_id=int(record.target_id), error=reason)
