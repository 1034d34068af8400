"""Celery signal handlers: a worker's view of a task becomes the record's state."""

import logging
from typing import Any

from celery import signals
from django.utils import timezone

from common.logs import log_context_bind, request_id_get
from jobs.models import TaskRecord
from jobs.services import TASK_REQUEST_ID_HEADER, task_record_update

logger = logging.getLogger(__name__)
State = TaskRecord.State


def _error_text(exc: BaseException | None) -> str:
    if exc is None:
        return "Task failed."
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ == "TaskFailed" else f"{type(exc).__name__}: {text}"


@signals.task_received.connect
def _on_received(request: Any = None, **_: Any) -> None:
    """Note which worker holds a message before it starts, so its death is noticed too."""
    if request is not None and getattr(request, "hostname", None):
        TaskRecord.objects.filter(pk=request.id, state__in=TaskRecord.UNSENT_STATES).update(worker=request.hostname)


def _request_id_of(task: Any) -> str:
    request = task.request
    value = getattr(request, TASK_REQUEST_ID_HEADER, None) or (request.headers or {}).get(TASK_REQUEST_ID_HEADER)
    return value if isinstance(value, str) else ""


@signals.before_task_publish.connect
def _carry_request_id(headers: dict | None = None, **_: Any) -> None:
    """Messages sent outside the dispatch path (a retry, a task sent from a task) keep the request id."""
    if headers is not None and TASK_REQUEST_ID_HEADER not in headers and request_id_get():
        headers[TASK_REQUEST_ID_HEADER] = request_id_get()


@signals.task_prerun.connect
def _on_prerun(task_id: str, task: Any, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    # First, so every line the task logs (and what it dispatches) carries its ids.
    log_context_bind(request_id=_request_id_of(task), task_id=task_id, task_name=task.name)
    now = timezone.now()
    worker = task.request.hostname or ""
    if task_record_update(task_id=task_id, state=State.STARTED, started_at=now, worker=worker):
        return
    # Sent without the dispatch path (beat, Flower, a shell): record it now so it is visible too.
    queue = (task.request.delivery_info or {}).get("routing_key") or ""
    TaskRecord.objects.get_or_create(
        pk=task_id,
        defaults={
            "name": task.name,
            "queue": queue,
            "args": list(args or []),
            "kwargs": dict(kwargs or {}),
            "state": State.STARTED,
            "sends": 1,
            "sent_at": now,
            "started_at": now,
            "worker": worker,
        },
    )


@signals.task_retry.connect
def _on_retry(request: Any, reason: Any = None, **_: Any) -> None:
    task_record_update(task_id=request.id, state=State.RETRY, error=str(reason or ""))


@signals.task_postrun.connect
def _on_postrun(task_id: str, retval: Any = None, state: str | None = None, **_: Any) -> None:
    now = timezone.now()
    if state == "SUCCESS":
        result = retval if isinstance(retval, (dict, list, str, int, float, bool, type(None))) else str(retval)
        task_record_update(
            task_id=task_id, state=State.SUCCESS, result=result, error="", progress_percent=100, finished_at=now
        )
    elif state == "FAILURE":
        task_record_update(task_id=task_id, state=State.FAILURE, error=_error_text(retval), finished_at=now)
    log_context_bind()  # the pool thread's next task starts clean


@signals.task_revoked.connect
def _on_revoked(request: Any, **_: Any) -> None:
    task_record_update(task_id=request.id, state=State.REVOKED, finished_at=timezone.now())
