"""Re-syncing: the sync queue (claimed with SKIP LOCKED), full re-sync in batches, re-sync of chosen documents."""

import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from ai import providers
from jobs import queues
from jobs.models import TaskRecord
from jobs.services import task_dispatch, task_progress_set
from sync.models import Document, SyncQueueItem
from sync.services import BATCH_TASK, FULL_SYNC_TASK, QUEUE_TASK
from sync.services.embedding import document_fail, document_sync_guarded
from users.models import User

logger = logging.getLogger(__name__)
Status = Document.Status
# An item whose claims keep dying with their worker (a document that crashes it) is given up.
MAX_CLAIMS = 3


@dataclass
class SyncOutcome:
    """What a run over many documents did."""

    processed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"processed": len(self.processed), "failed": len(self.failed)}


def _sync_each(document_ids: Iterable[int], outcome: SyncOutcome, *, force: bool) -> None:
    for document_id in document_ids:
        run = document_sync_guarded(document_id=document_id, force=force)
        if not run.embedded:
            continue  # deleted meanwhile, being deleted, or (without force) already up to date
        outcome.processed.append(document_id)
        if run.document is not None and run.document.status == Status.FAILED:
            outcome.failed.append(document_id)


# The sync queue -------------------------------------------------------------------------------


def sync_queue_enqueue(*, document_ids: Iterable[int], reason: str = SyncQueueItem.Reason.RESYNC) -> int:
    """Put documents in the sync queue (once each; those already waiting stay as they are)."""
    ids = list(
        Document.objects.filter(pk__in=list(document_ids)).exclude(status=Status.DELETING).values_list("pk", flat=True)
    )
    before = SyncQueueItem.objects.filter(document_id__in=ids).count()
    SyncQueueItem.objects.bulk_create(
        [SyncQueueItem(document_id=pk, reason=reason) for pk in ids], ignore_conflicts=True
    )
    return len(ids) - before


def sync_queue_enqueue_outdated(*, limit: int = 10_000) -> int:
    """Queue the documents embedded with another model than today's (the model setting changed).

    One `INSERT ... SELECT` decides and inserts on the same snapshot. A run embeds a queued
    document and commits today's model before it deletes the item, so in any one snapshot a
    document either still has its item or is no longer outdated: a document that another run
    holds, or has just re-embedded and dequeued, is never queued again. (Deciding in one query
    and inserting in a later one let a concurrent run claim, embed and dequeue a document in
    between, and the stale decision queued it a second time.)
    """
    items, documents = SyncQueueItem._meta, Document._meta
    quote = connection.ops.quote_name
    sql = f"""
        INSERT INTO {quote(items.db_table)} (document_id, reason, enqueued_at, claimed_by, attempts)
        SELECT d.id, %s, %s, '', 0
        FROM {quote(documents.db_table)} d
        WHERE d.status = %s AND d.embedding_model <> %s
          AND NOT EXISTS (SELECT 1 FROM {quote(items.db_table)} q WHERE q.document_id = d.id)
        ORDER BY d.id
        LIMIT %s
        ON CONFLICT (document_id) DO NOTHING
    """
    params = [SyncQueueItem.Reason.MODEL_CHANGED, timezone.now(), Status.EMBEDDED, providers.embedding_model(), limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def sync_queue_claim(*, claimer: str, limit: int) -> list[SyncQueueItem]:
    """Take up to `limit` items nobody holds, for `claimer`.

    `SELECT ... FOR UPDATE SKIP LOCKED` lets concurrent claimers pass over each other's rows
    instead of waiting for them, and the claim is committed at once, so no provider call runs
    inside a transaction. A claim older than SYNC_QUEUE_CLAIM_TIMEOUT_SECONDS (its worker died)
    may be taken again.
    """
    now = timezone.now()
    expired = now - timedelta(seconds=settings.SYNC_QUEUE_CLAIM_TIMEOUT_SECONDS)
    with transaction.atomic():
        items = list(
            SyncQueueItem.objects.select_for_update(skip_locked=True)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=expired))
            .order_by("enqueued_at", "id")[:limit]
        )
        if items:
            SyncQueueItem.objects.filter(pk__in=[item.pk for item in items]).update(
                claimed_at=now, claimed_by=claimer, attempts=F("attempts") + 1
            )
    for item in items:
        item.claimed_at, item.claimed_by, item.attempts = now, claimer, item.attempts + 1
    return items


def sync_queue_process(*, claim_size: int = 10, time_budget: float | None = None) -> SyncOutcome:
    """Drain the sync queue: queue outdated documents, then claim, embed and remove items until empty or out of time."""
    claimer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    budget = settings.SYNC_QUEUE_TIME_BUDGET_SECONDS if time_budget is None else time_budget
    deadline = time.monotonic() + budget
    outcome = SyncOutcome()
    sync_queue_enqueue_outdated()
    while time.monotonic() < deadline and (items := sync_queue_claim(claimer=claimer, limit=claim_size)):
        for item in items:
            if item.attempts > MAX_CLAIMS:
                document_fail(document_id=item.document_id, error=f"Gave up after {MAX_CLAIMS} attempts to embed it.")
                outcome.failed.append(item.document_id)
            else:
                # A model change is done once the document has today's model: checked under the
                # document's lock, so an item queued again for a document that another run has
                # just re-embedded is dropped instead of embedding it a second time.
                model_changed = item.reason == SyncQueueItem.Reason.MODEL_CHANGED
                _sync_each([item.document_id], outcome, force=not model_changed)
            SyncQueueItem.objects.filter(pk=item.pk, claimed_by=claimer).delete()
    if outcome.processed:
        logger.info("sync queue: %s", outcome.counts())
    return outcome


@transaction.atomic
def sync_queue_process_start(*, user: User | None = None) -> TaskRecord:
    """Drain the sync queue now instead of at the next periodic run."""
    return task_dispatch(name=QUEUE_TASK, queue=queues.SYNC, owner=user)


# Re-sync of chosen documents, and of all ---------------------------------------------------------


@transaction.atomic
def documents_resync_start(*, user: User | None, document_ids: list[int]) -> TaskRecord:
    """Embed the given documents again, in one task (the admin's re-sync action)."""
    return task_dispatch(name=BATCH_TASK, queue=queues.SYNC, args=[list(document_ids)], owner=user)


def documents_sync_many(
    *, document_ids: list[int], force: bool = True, task_id: str | None = None, batch_size: int | None = None
) -> SyncOutcome:
    """Embed documents one after another, reporting progress; a failing one does not stop the rest."""
    ids = iter(document_ids)
    return _sync_in_batches(
        lambda size: list(itertools.islice(ids, size)),
        total=len(document_ids),
        force=force,
        task_id=task_id,
        batch_size=batch_size,
    )


@transaction.atomic
def full_sync_start(*, user: User | None, batch_size: int | None = None) -> TaskRecord:
    """Start a full re-sync of every document (the staff endpoint)."""
    batch_size = batch_size or settings.SYNC_FULL_BATCH_SIZE
    return task_dispatch(name=FULL_SYNC_TASK, queue=queues.SYNC, kwargs={"batch_size": batch_size}, owner=user)


def full_sync_run(*, batch_size: int | None = None, task_id: str | None = None) -> SyncOutcome:
    """Embed every document again, `batch_size` at a time, in id order, reporting progress after each batch."""
    documents = Document.objects.exclude(status=Status.DELETING).order_by("pk")
    last_id = 0

    def next_batch(size: int) -> list[int]:
        nonlocal last_id
        ids = list(documents.filter(pk__gt=last_id).values_list("pk", flat=True)[:size])
        last_id = ids[-1] if ids else last_id
        return ids

    return _sync_in_batches(next_batch, total=documents.count(), force=True, task_id=task_id, batch_size=batch_size)


def _sync_in_batches(
    next_batch: Callable[[int], list[int]], *, total: int, force: bool, task_id: str | None, batch_size: int | None
) -> SyncOutcome:
    batch_size = max(1, batch_size or settings.SYNC_FULL_BATCH_SIZE)
    outcome = SyncOutcome()
    done = 0
    _progress(task_id, 0, f"0 of {total} documents")
    while ids := next_batch(batch_size):
        _sync_each(ids, outcome, force=force)
        done += len(ids)
        total = max(total, done)  # documents created during the run are taken too
        _progress(task_id, 100 * done // total, f"{done} of {total} documents, {len(outcome.failed)} failed")
    return outcome


def _progress(task_id: str | None, percent: int, message: str) -> None:
    if task_id:
        task_progress_set(task_id=task_id, percent=percent, message=message)
