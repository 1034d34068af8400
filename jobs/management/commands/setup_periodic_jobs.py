"""`manage.py setup_periodic_jobs`: create missing periodic jobs; never overwrite existing ones."""

from typing import Any

from django.core.management.base import BaseCommand

from jobs.schedules import periodic_jobs_ensure


class Command(BaseCommand):
    help = "Create the periodic jobs that do not exist yet in django-celery-beat's tables."

    def handle(self, *args: Any, **options: Any) -> None:
        created = periodic_jobs_ensure()
        self.stdout.write(f"created: {', '.join(created)}" if created else "all periodic jobs already exist")
