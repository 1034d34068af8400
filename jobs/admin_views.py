"""Staff pages in the admin: the operations page and the live dashboard."""

import uuid
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin, messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST
from django_celery_beat.models import PeriodicTask

from jobs.beat import beat_last_tick
from jobs.dashboard import dashboard_data
from jobs.exceptions import RetryRefused
from jobs.models import TaskRecord
from jobs.selectors import queue_lengths, workers_overview
from jobs.services import task_retry


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


def dashboard_view(request: HttpRequest) -> HttpResponse:
    """The live dashboard: rendered once here, then its panels refresh from `dashboard_panels_view`."""
    context = {**admin.site.each_context(request), "title": "Dashboard", **_panels_context()}
    return TemplateResponse(request, "admin/jobs/dashboard.html", context)


def dashboard_panels_view(request: HttpRequest) -> HttpResponse:
    """The dashboard's panels alone (an HTML fragment), fetched by the page every few seconds."""
    return TemplateResponse(request, "admin/jobs/dashboard_panels.html", _panels_context())


def dashboard_data_view(request: HttpRequest) -> JsonResponse:
    """The dashboard's numbers as JSON, for tools and scripts."""
    return JsonResponse(dashboard_data(), encoder=DjangoJSONEncoder)


@require_POST
def dashboard_retry_view(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    """Retry one failed task from the dashboard, then back to it with a message."""
    record = TaskRecord.objects.filter(pk=task_id).first()
    if record is None:
        messages.error(request, "No such task.")
        return redirect("admin-dashboard")
    try:
        task_retry(record=record, by=request.user)
    except (ValueError, RetryRefused) as exc:  # not failed, or the app said no (status, today's limit)
        messages.error(request, f"Not retried: {exc}")
    else:
        target = f"{record.target_type} #{record.target_id}" if record.target_id else record.name
        messages.success(request, f"Retried {target}.")
    return redirect("admin-dashboard")


def _panels_context() -> dict[str, Any]:
    data = dashboard_data()
    return {"data": data, "now_rows": sorted(data["now"].items())}
