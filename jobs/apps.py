from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background tasks"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        post_migrate.connect(_ensure_periodic_jobs, sender=self)
        from jobs import heartbeat, queues, worker_signals  # noqa: F401  (connects Celery's signals)
        from jobs.schedules import PeriodicJob, periodic_job_register

        for job in [
            PeriodicJob(
                slug="cleanup-task-records",
                task="jobs.cleanup_task_records",
                queue=queues.MAINTENANCE,
                crontab={"minute": "0", "hour": "4"},
                description="Delete failed task records older than JOBS_FAILED_KEEP_DAYS (and old successes).",
            ),
            PeriodicJob(
                slug="expire-task-results",
                task="jobs.expire_task_results",
                queue=queues.MAINTENANCE,
                crontab={"minute": "15", "hour": "4"},
                description="Delete stored task results older than CELERY_RESULT_EXPIRES.",
            ),
            PeriodicJob(
                slug="cleanup-cache",
                task="jobs.clean_cache",
                queue=queues.MAINTENANCE,
                crontab={"minute": "0", "hour": "*/6"},
                description="Remove cache keys without expiry that nobody read for CACHE_MAX_IDLE_DAYS.",
            ),
        ]:
            periodic_job_register(job)
        periodic_job_register(
            PeriodicJob(
                slug="sweep-task-records",
                task="jobs.sweep_task_records",
                queue=queues.MAINTENANCE,
                every_seconds=60,
                description="Send again work that was never sent or went silent.",
            )
        )


def _ensure_periodic_jobs(**_: object) -> None:
    """After every migrate, create the periodic jobs that are missing (edits are never touched)."""
    from jobs.schedules import periodic_jobs_ensure

    periodic_jobs_ensure()
