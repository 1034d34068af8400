from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from jobs import queues
        from jobs.schedules import PeriodicJob, periodic_job_register
        from notifications import receivers, task_names  # noqa: F401  (listens to jobs' signals)

        periodic_job_register(
            PeriodicJob(
                slug="send-statistics",
                task=task_names.SEND_USAGE_STATISTICS,
                queue=queues.NOTIFICATIONS,
                crontab={"minute": "0"},
                description="Send each user with a usage.statistics webhook their numbers for today.",
            )
        )
