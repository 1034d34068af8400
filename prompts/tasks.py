"""Prompt tasks: thin wrappers over the services."""

from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from ai.budgets import BudgetExhausted, budget_countdown
from jobs import queues
from jobs.exceptions import TaskFailed
from jobs.retries import task_wait
from prompts.models import PromptRequest
from prompts.services import (
    PROCESS_TASK,
    conversations_archive,
    prompt_request_fail,
    prompt_request_process,
    query_cache_clean,
    user_statistics_recompute,
)


class PromptTask(Task):
    """Whatever ends the task in failure also ends its request FAILED, never IN_PROGRESS."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if args and not isinstance(exc, TaskFailed):
            prompt_request_fail(request_id=args[0], error=f"Internal error while processing: {type(exc).__name__}")


@shared_task(
    base=PromptTask,
    bind=True,
    name=PROCESS_TASK,
    throws=(TaskFailed,),
    # A database restart is transient: try again shortly (well under the visibility timeout).
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
    default_retry_delay=2,  # after its pool child was lost (task_retry_on_worker_lost); backoff otherwise
)
def process_prompt_request(self: Task, request_id: int) -> dict[str, Any] | None:
    """Call the provider for one request and store its response."""
    try:
        request = prompt_request_process(request_id=request_id, task_id=self.request.id)
    except BudgetExhausted as exc:  # the provider budget is spent for now: come back later
        raise task_wait(self, exc=exc, countdown=budget_countdown(exc)) from None
    if request is None:
        return None
    if request.status == PromptRequest.Status.FAILED:
        raise TaskFailed(request.error)
    return {"request_id": request.pk, "status": request.status}


@shared_task(name="prompts.update_user_statistics", queue=queues.MAINTENANCE)
def update_user_statistics(user_id: int) -> dict[str, int]:
    """Recompute today's statistics of one user from their requests (idempotent)."""
    return user_statistics_recompute(user_id=user_id)


@shared_task(name="prompts.archive_conversations", queue=queues.MAINTENANCE)
def archive_conversations() -> int:
    """Archive conversations without a turn for CONVERSATION_ARCHIVE_DAYS (daily, one UPDATE)."""
    return conversations_archive(idle_days=settings.CONVERSATION_ARCHIVE_DAYS)


@shared_task(name="prompts.clean_query_cache", queue=queues.MAINTENANCE)
def clean_query_cache() -> int:
    """Delete expired cached answers (daily)."""
    return query_cache_clean()
