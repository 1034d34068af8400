"""Tasks of the dispatch layer itself."""

from celery import shared_task
from django.conf import settings

from jobs import queues
from jobs.services import cache_clean, task_records_purge, task_records_sweep, task_results_expire


@shared_task(name="jobs.sweep_task_records", queue=queues.MAINTENANCE, acks_late=False)
def sweep_task_records() -> dict[str, int]:
    """Re-send records that were never sent or went silent (every minute)."""
    return task_records_sweep()


@shared_task(name="jobs.cleanup_task_records", queue=queues.MAINTENANCE)
def cleanup_task_records() -> int:
    """Delete failed and finished task records past their retention (daily)."""
    return task_records_purge(
        failed_older_than_days=settings.JOBS_FAILED_KEEP_DAYS,
        succeeded_older_than_days=settings.JOBS_SUCCEEDED_KEEP_DAYS,
    )


@shared_task(name="jobs.expire_task_results", queue=queues.MAINTENANCE)
def expire_task_results() -> int:
    """Delete stored task results past CELERY_RESULT_EXPIRES (daily)."""
    return task_results_expire(older_than_seconds=settings.CELERY_RESULT_EXPIRES)


@shared_task(name="jobs.clean_cache", queue=queues.MAINTENANCE)
def clean_cache() -> int:
    """Remove cache keys stored without expiry and idle for CACHE_MAX_IDLE_DAYS (every 6 hours)."""
    return cache_clean(max_idle_seconds=settings.CACHE_MAX_IDLE_DAYS * 86400)
