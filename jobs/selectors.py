"""Reads for task records and the health of the background machinery."""

import uuid
from typing import Any

from celery import current_app
from django.db import connection
from django.db.models import QuerySet

from jobs.models import TaskRecord


def task_record_list(*, user: Any) -> QuerySet[TaskRecord]:
    """The records `user` may see: their own, or all for staff."""
    queryset = TaskRecord.objects.all()
    return queryset if user.is_staff else queryset.filter(owner=user)


def task_record_get(*, user: Any, task_id: str) -> TaskRecord | None:
    """One record by id if `user` may see it; an unknown id and another's id are both None."""
    try:
        task_uuid = uuid.UUID(str(task_id))
    except ValueError:
        return None
    return task_record_list(user=user).filter(pk=task_uuid).first()


def health_check(*, worker_timeout: float = 1.0) -> dict[str, Any]:
    """Database, broker and workers, each with `ok` and what was seen."""
    report: dict[str, Any] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report["database"] = {"ok": True}
    except Exception as exc:
        report["database"] = {"ok": False, "error": str(exc)}
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        report["broker"] = {"ok": True}
    except Exception as exc:
        report["broker"] = {"ok": False, "error": str(exc)}
    workers: list[str] = []
    if report["broker"]["ok"]:
        try:
            replies = current_app.control.ping(timeout=worker_timeout) or []
            workers = sorted(name for reply in replies for name in reply)
        except Exception:  # a broker hiccup between the two checks
            workers = []
    report["workers"] = {"ok": bool(workers), "seen": workers}
    return report
