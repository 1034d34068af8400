from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background tasks"

    def ready(self) -> None:
        from jobs import queues, worker_signals  # noqa: F401  (connects Celery's signals)
        from jobs.schedules import PeriodicJob, periodic_job_register

        periodic_job_register(
            PeriodicJob(
                slug="sweep-task-records",
                task="jobs.sweep_task_records",
                queue=queues.MAINTENANCE,
                every_seconds=60,
                description="Send again work that was never sent or went silent.",
            )
        )
