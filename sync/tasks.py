"""Sync tasks: thin wrappers over the services (ids in; a gone or finished row is a no-op)."""

from typing import Any

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from ai.budgets import BudgetExhausted, budget_countdown
from jobs.exceptions import TaskFailed
from jobs.retries import task_wait
from sync.models import Document
from sync.services import BATCH_TASK, DELETE_TASK, FULL_SYNC_TASK, QUEUE_TASK, SYNC_TASK
from sync.services.embedding import document_embeddings_delete, document_fail, document_sync
from sync.services.sync import documents_sync_many, full_sync_run, sync_queue_process

# A database restart is transient: try again shortly (well under the visibility timeout).
DATABASE_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


class DocumentTask(Task):
    """Whatever ends the task in failure also ends its document FAILED, never PROCESSING."""

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if args and not isinstance(exc, TaskFailed):
            document_fail(document_id=args[0], error=f"Internal error while embedding: {type(exc).__name__}")


@shared_task(base=DocumentTask, bind=True, name=SYNC_TASK, throws=(TaskFailed,), **DATABASE_RETRY)
def sync_embeddings(self: Task, document_id: int) -> dict[str, Any] | None:
    """Chunk and embed one document (a no-op if it is gone or already embedded with today's model)."""
    try:
        document = document_sync(document_id=document_id)
    except BudgetExhausted as exc:  # the provider budget is spent for now: come back later
        raise task_wait(self, exc=exc, countdown=budget_countdown(exc)) from None
    if document is None:
        return None
    if document.status == Document.Status.FAILED:
        raise TaskFailed(document.error)
    return {"document_id": document.pk, "status": document.status, "chunk_count": document.chunk_count}


@shared_task(name=DELETE_TASK, **DATABASE_RETRY)
def delete_document_embeddings(document_id: int) -> dict[str, Any] | None:
    """Delete a document's chunks, then the document (a no-op if it is gone already)."""
    return document_embeddings_delete(document_id=document_id)


# The tasks below may run for long. They are acknowledged on receipt (not late), so Redis never
# hands a long run to a second worker after the visibility timeout; a run lost with its worker
# is sent again by the sweeper (dispatched ones) or by the next periodic run (the queue).


@shared_task(bind=True, name=BATCH_TASK, acks_late=False, **DATABASE_RETRY)
def process_documents_batch(self: Task, document_ids: list[int]) -> dict[str, int]:
    """Embed the given documents again, one after another, reporting progress."""
    return documents_sync_many(document_ids=document_ids, task_id=self.request.id).counts()


@shared_task(bind=True, name=FULL_SYNC_TASK, acks_late=False, **DATABASE_RETRY)
def trigger_full_sync(self: Task, batch_size: int | None = None) -> dict[str, int]:
    """Embed every document again in batches, reporting progress after each batch."""
    return full_sync_run(batch_size=batch_size, task_id=self.request.id).counts()


@shared_task(name=QUEUE_TASK, acks_late=False)
def process_sync_queue() -> dict[str, Any]:
    """Drain the sync queue (every 5 minutes); two runs at once never take the same item."""
    outcome = sync_queue_process()
    return {**outcome.counts(), "document_ids": outcome.processed[:1000]}
