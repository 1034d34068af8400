"""Periodic jobs: declared once here (apps register theirs), written to django-celery-beat's tables.

`periodic_jobs_ensure` creates the rows that are missing and never touches existing ones, so an
operator's edits in the admin (schedule, enabled, queue) survive every restart.
"""

import json
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction


@dataclass(frozen=True)
class PeriodicJob:
    """One job that beat runs on a schedule; `slug` is also its manual trigger name."""

    slug: str
    task: str
    queue: str
    description: str
    every_seconds: int | None = None
    crontab: dict[str, str] = field(default_factory=dict)  # minute, hour, day_of_week, ...


REGISTRY: dict[str, PeriodicJob] = {}
CRONTAB_DEFAULTS = {"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}


def periodic_job_register(job: PeriodicJob) -> None:
    """Declare a periodic job (called from an app's `ready`)."""
    REGISTRY[job.slug] = job


@transaction.atomic
def periodic_jobs_ensure() -> list[str]:
    """Create the beat rows of registered jobs that do not exist yet; returns the slugs created."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    created = []
    for job in REGISTRY.values():
        if PeriodicTask.objects.filter(name=job.slug).exists():
            continue
        schedule: dict = {}
        if job.every_seconds:
            schedule["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=job.every_seconds, period=IntervalSchedule.SECONDS
            )
        else:
            # Every field named: a lookup on some fields only would match other jobs' schedules.
            spec = {**CRONTAB_DEFAULTS, **job.crontab, "timezone": settings.TIME_ZONE}
            schedule["crontab"] = CrontabSchedule.objects.filter(**spec).first() or CrontabSchedule.objects.create(
                **spec
            )
        PeriodicTask.objects.create(
            name=job.slug,
            task=job.task,
            queue=job.queue,
            description=job.description,
            kwargs=json.dumps({}),
            **schedule,
        )
        created.append(job.slug)
    return created
