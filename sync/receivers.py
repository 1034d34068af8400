"""Reactions to the dispatch layer's signals."""

from typing import Any

from django.dispatch import receiver

from jobs.models import TaskRecord
from jobs.signals import task_record_abandoned
from sync.services import SYNC_TASK
from sync.services.embedding import document_fail


@receiver(task_record_abandoned)
def _end_abandoned_document(sender: Any, record: TaskRecord, reason: str, **_: Any) -> None:
    if record.target_type == "sync.document" and record.name == SYNC_TASK:
        document_fail(document_id=int(record.target_id), error=reason)
