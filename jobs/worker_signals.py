"""Celery signal handlers: a worker's view of a task becomes the record's state."""

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from billiard.exceptions import WorkerLostError
from billiard.process import current_process
from celery import signals
from django.db import InterfaceError, OperationalError, close_old_connections, connection
from django.utils import timezone

from common.logs import log_context_bind, request_id_get
from jobs.models import TaskRecord
from jobs.sending import TASK_REQUEST_ID_HEADER
from jobs.services import task_record_abandon, task_record_start, task_record_update

logger = logging.getLogger(__name__)
State = TaskRecord.State
# How long a handler in a pool thread waits for the database to come back (a restart).
DATABASE_WAIT_SECONDS = 30


def _with_database(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Run a handler again on a new connection when the database dropped it (a restart).

    A worker keeps its connections for its life, outside any web request, so one that a
    restart broke stays broken until someone closes it: here, on the first error, after which
    the handler runs once more at once. Where a task runs (a pool thread, a prefork child) it
    then waits up to DATABASE_WAIT_SECONDS for the server; the consumer's thread (received,
    revoked, a prefork parent's view of a lost child) must never sleep, so there it gives up.
    """

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        consumer = current_process().name == "MainProcess" and threading.current_thread() is threading.main_thread()
        deadline = time.monotonic() + (0 if consumer else DATABASE_WAIT_SECONDS)
        pause = 0.0  # the first retry is immediate: often only our connection was dead
        while True:
            try:
                return handler(*args, **kwargs)
            except (OperationalError, InterfaceError):
                if connection.in_atomic_block or (pause and time.monotonic() + pause > deadline):
                    raise
                connection.close()
                time.sleep(pause)
                pause = min(pause * 2, 5) or 0.1

    return wrapper


def _error_text(exc: BaseException | None) -> str:
    if exc is None:
        return "Task failed."
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ == "TaskFailed" else f"{type(exc).__name__}: {text}"


@signals.task_received.connect
@_with_database
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
def _connections_check(task: Any = None, **_: Any) -> None:
    """Before a task, what Django does before a request: close the thread's connections that
    are past CONN_MAX_AGE or broke, and have the others checked (one `SELECT 1`) at first use.

    Celery's Django fixup would close them before and after every task (a new connection per
    task, a few milliseconds each); settings.CELERY_DB_REUSE_MAX turns that off, and this,
    with the same call after each task, keeps them for CONN_MAX_AGE instead (0: never kept).
    A task run inline (`apply()`) uses its caller's connection, maybe inside a transaction: left alone.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()


@signals.task_prerun.connect
@_with_database
def _on_prerun(task_id: str, task: Any, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    # First, so every line the task logs (and what it dispatches) carries its ids.
    log_context_bind(request_id=_request_id_of(task), task_id=task_id, task_name=task.name)
    now = timezone.now()
    worker = task.request.hostname or ""
    if task_record_start(task_id=task_id, worker=worker, now=now):
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
@_with_database
def _on_retry(request: Any, reason: Any = None, **_: Any) -> None:
    task_record_update(task_id=request.id, state=State.RETRY, error=str(reason or ""))


@signals.task_postrun.connect
@_with_database
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


signals.task_postrun.connect(_connections_check)  # after _on_postrun, which uses them


@signals.task_failure.connect
@_with_database
def _on_worker_lost(sender: Any = None, task_id: str = "", exception: BaseException | None = None, **_: Any) -> None:
    """A pool child died under a task that has no retry left: end it, with the reason, now.

    Celery retries a task whose child was lost (task_retry_on_worker_lost) until its max_retries;
    after that it acknowledges the message and says FAILURE here, in the parent, where no
    task_postrun follows. Without this the record would stay STARTED, held by a live worker.
    """
    if not isinstance(exception, WorkerLostError):
        return
    runs = getattr(getattr(sender, "request", None), "retries", 0) + 1
    task_record_abandon(
        task_id=task_id,
        reason=f"The worker process running this task was lost (killed or out of memory) {runs} times; gave up.",
    )


@signals.task_revoked.connect
@_with_database
def _on_revoked(request: Any, **_: Any) -> None:
    task_record_update(task_id=request.id, state=State.REVOKED, finished_at=timezone.now())
