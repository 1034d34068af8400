"""Tasks of the dispatch layer itself."""

from celery import shared_task

from jobs import queues
from jobs.services import task_records_sweep


@shared_task(name="jobs.sweep_task_records", queue=queues.MAINTENANCE, acks_late=False)
def sweep_task_records() -> dict[str, int]:
    """Re-send records that were never sent or went silent (every minute)."""
    return task_records_sweep()
