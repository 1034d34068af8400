"""The sync queue: concurrent claimers never take the same item; model changes are re-embedded through it."""

import threading

from django.db import connection, transaction

from conftest import wait_until
from jobs import queues
from jobs.models import TaskRecord
from jobs.services import task_dispatch
from sync.models import Document, DocumentChunk, SyncQueueItem
from sync.services import QUEUE_TASK
from sync.services.sync import (
    sync_queue_claim,
    sync_queue_enqueue,
    sync_queue_enqueue_outdated,
    sync_queue_process,
)


def make_documents(owner, count: int, *, status: str = "PENDING", model: str = "") -> list[Document]:
    return [
        Document.objects.create(
            owner=owner,
            title=f"doc {n}",
            text=f"document number {n} about topic {n % 7}",
            checksum=f"{model}-{n}",
            status=status,
            embedding_model=model,
        )
        for n in range(count)
    ]


def test_two_concurrent_claimers_process_each_item_exactly_once(transactional_db, make_user, settings):
    settings.AI_PROVIDER = "offline"
    documents = make_documents(make_user(), 40)
    sync_queue_enqueue(document_ids=[d.pk for d in documents])
    start = threading.Barrier(2)
    processed: dict[str, list[int]] = {}

    def drain(name: str) -> None:
        try:
            start.wait()
            processed[name] = sync_queue_process(claim_size=1).processed
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=drain, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    a, b = processed["a"], processed["b"]
    assert a and b, "both claimers should have taken part"
    assert not set(a) & set(b)
    assert sorted(a + b) == sorted(d.pk for d in documents)
    assert not SyncQueueItem.objects.exists()
    assert set(Document.objects.values_list("status", "generation", "chunk_count")) == {("EMBEDDED", 1, 1)}
    assert DocumentChunk.objects.count() == 40


def test_a_claimer_skips_rows_another_holds_and_takes_stale_claims_again(transactional_db, make_user, settings):
    documents = make_documents(make_user(), 3)
    sync_queue_enqueue(document_ids=[d.pk for d in documents])
    taken: list[int] = []

    with transaction.atomic():
        locked = list(SyncQueueItem.objects.select_for_update().order_by("id")[:1])  # another run mid-claim

        def claim() -> None:
            try:
                taken.extend(item.document_id for item in sync_queue_claim(claimer="other", limit=10))
            finally:
                connection.close()

        thread = threading.Thread(target=claim)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive(), "SKIP LOCKED must not wait for the lock"

    assert sorted(taken) == sorted(d.pk for d in documents if d.pk != locked[0].document_id)
    assert sync_queue_claim(claimer="late", limit=10) == [locked[0]]  # only the unclaimed one is left
    settings.SYNC_QUEUE_CLAIM_TIMEOUT_SECONDS = 0  # every claim is now stale
    assert len(sync_queue_claim(claimer="rescuer", limit=10)) == 3


def test_only_embedded_documents_of_another_model_without_an_item_are_queued_for_the_model_change(
    db, make_user, settings
):
    settings.AI_PROVIDER = "offline"  # today's model: offline-hashing-1
    owner = make_user()
    [outdated] = make_documents(owner, 1, status="EMBEDDED", model="old-model")
    [current] = make_documents(owner, 1, status="EMBEDDED", model="offline-hashing-1")
    [processing] = make_documents(owner, 1, status="PROCESSING", model="old")  # a run is embedding it
    [failed] = make_documents(owner, 1, status="FAILED", model="older")
    [held] = make_documents(owner, 1, status="EMBEDDED", model="oldest")
    SyncQueueItem.objects.create(document=held, claimed_by="another run")

    assert sync_queue_enqueue_outdated() == 1
    assert sync_queue_enqueue_outdated() == 0
    queued = {item.document_id: (item.reason, item.claimed_by) for item in SyncQueueItem.objects.all()}
    assert queued == {outdated.pk: ("model_changed", ""), held.pk: ("resync", "another run")}
    assert {current.pk, processing.pk, failed.pk}.isdisjoint(queued)


def test_a_model_change_item_for_a_document_already_on_todays_model_is_dropped_not_embedded_again(
    db, make_user, settings
):
    # What a run finds when an item was queued again for a document that another run had just
    # re-embedded: it must not embed it a second time nor report it as processed.
    settings.AI_PROVIDER = "offline"
    done, asked = make_documents(make_user(), 2, status="EMBEDDED", model="offline-hashing-1")
    Document.objects.update(generation=1, last_generation=1)
    SyncQueueItem.objects.create(document=done, reason=SyncQueueItem.Reason.MODEL_CHANGED)
    SyncQueueItem.objects.create(document=asked, reason=SyncQueueItem.Reason.RESYNC)  # an explicit re-sync

    outcome = sync_queue_process()

    assert outcome.processed == [asked.pk]
    assert not SyncQueueItem.objects.exists()
    generations = dict(Document.objects.values_list("pk", "last_generation"))
    assert generations == {done.pk: 1, asked.pk: 2}
    assert not DocumentChunk.objects.filter(document=done).exists()


def test_documents_of_another_embedding_model_are_reembedded_through_the_queue_by_two_runs(
    worker, make_user, openai_server
):
    documents = make_documents(make_user(), 12, status="EMBEDDED", model="old-model")

    with transaction.atomic():  # two runs at once, as two workers (or beat twice) would start them
        records = [task_dispatch(name=QUEUE_TASK, queue=queues.SYNC) for _ in range(2)]

    def finished():
        states = [TaskRecord.objects.get(pk=r.pk) for r in records]
        return states if all(s.is_final for s in states) else None

    done = wait_until(finished, timeout=30, what="both queue runs")
    assert [record.state for record in done] == ["SUCCESS", "SUCCESS"], [record.error for record in done]
    runs = [set(record.result["document_ids"]) for record in done]
    assert not runs[0] & runs[1]
    assert runs[0] | runs[1] == {d.pk for d in documents}
    assert set(Document.objects.values_list("status", "embedding_model")) == {("EMBEDDED", "text-embedding-3-small")}
    assert not SyncQueueItem.objects.exists()
