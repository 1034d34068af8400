from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "users"

    def ready(self) -> None:
        from jobs import queues
        from jobs.dashboard import dashboard_panel_register
        from jobs.schedules import PeriodicJob, periodic_job_register
        from users import schema  # noqa: F401  (registers the API key scheme with drf-spectacular)
        from users.selectors import usage_by_tier_today

        dashboard_panel_register("usage-by-tier", usage_by_tier_today)

        periodic_job_register(
            PeriodicJob(
                slug="reset-daily-limits",
                task="users.reset_all_daily_limits",
                queue=queues.MAINTENANCE,
                crontab={"minute": "0", "hour": "0"},
                description="Zero every user's daily request counters (midnight, TIME_ZONE).",
            )
        )
        periodic_job_register(
            PeriodicJob(
                slug="calculate-tiers",
                task="users.calculate_all_tiers",
                queue=queues.MAINTENANCE,
                crontab={"minute": "30", "hour": "3"},
                description="Move users who are not pinned to the automatic tier their usage reaches.",
            )
        )
