"""The operations page: workers, queue lengths, periodic jobs and beat, for staff."""

from datetime import UTC, datetime

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django_celery_beat.models import PeriodicTask

from jobs.beat import beat_last_tick
from jobs.selectors import queue_lengths, workers_overview


def operations_view(request: HttpRequest) -> HttpResponse:
    """Server-rendered overview of the background machinery (inspect calls time out quickly)."""
    overview = workers_overview()
    last_tick = beat_last_tick()
    context = {
        **admin.site.each_context(request),
        "title": "Operations",
        "workers": overview["workers"],
        "queues": sorted((overview.get("queues") or queue_lengths()).items()),
        "periodic_tasks": PeriodicTask.objects.select_related("interval", "crontab").order_by("name"),
        "beat_last_tick": datetime.fromtimestamp(last_tick, tz=UTC) if last_tick else None,
    }
    return TemplateResponse(request, "admin/jobs/operations.html", context)
