from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "prompts"

    def ready(self) -> None:
        from ai.services import budgets_panel
        from jobs import queues
        from jobs.dashboard import dashboard_panel_register
        from jobs.schedules import PeriodicJob, periodic_job_register
        from prompts import receivers  # noqa: F401  (listens to jobs' signals)

        # The budgets prompts spend, on the operators' dashboard (jobs and ai know nothing of each other).
        dashboard_panel_register("provider-budgets", budgets_panel)

        periodic_job_register(
            PeriodicJob(
                slug="cleanup-query-cache",
                task="prompts.clean_query_cache",
                queue=queues.MAINTENANCE,
                crontab={"minute": "0", "hour": "2"},
                description="Delete expired answers from the query cache.",
            )
        )
        periodic_job_register(
            PeriodicJob(
                slug="archive-conversations",
                task="prompts.archive_conversations",
                queue=queues.MAINTENANCE,
                crontab={"minute": "30", "hour": "4"},
                description="Archive conversations without a turn for CONVERSATION_ARCHIVE_DAYS.",
            )
        )
