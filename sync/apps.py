from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Documents"

    def ready(self) -> None:
        from jobs import queues
        from jobs.schedules import PeriodicJob, periodic_job_register
        from sync import checks, receivers  # noqa: F401  (system checks; listens to jobs' signals)
        from sync.services import QUEUE_TASK

        periodic_job_register(
            PeriodicJob(
                slug="process-sync-queue",
                task=QUEUE_TASK,
                queue=queues.SYNC,
                every_seconds=300,
                description="Embed again the documents waiting in the sync queue (re-syncs, model changes).",
            )
        )
