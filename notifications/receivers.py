"""Reactions to the dispatch layer's signals."""

from typing import Any

from django.dispatch import receiver

from jobs.models import TaskRecord
from jobs.signals import task_record_abandoned
from notifications.services import delivery_fail, fan_out_fail


@receiver(task_record_abandoned)
def _end_abandoned_work(sender: Any, record: TaskRecord, reason: str, **_: Any) -> None:
    if record.target_type == "notifications.delivery":
        delivery_fail(delivery_id=int(record.target_id), error=reason)
    elif record.target_type == "notifications.fanout":
        fan_out_fail(fan_out_id=int(record.target_id), error=reason)
