"""The search selector with the offline provider: no network, only live chunks of one's own documents."""

from django.db import connection

from jobs import queues
from jobs.schedules import REGISTRY
from sync.models import Document, DocumentChunk
from sync.selectors import chunk_search
from sync.services.documents import DocumentText, document_create
from sync.services.embedding import document_sync


def embedded(user, title: str, text: str) -> Document:
    document = document_create(user=user, upload=DocumentText(title=title, text=text)).document
    return document_sync(document_id=document.pk)


def test_offline_embeddings_make_search_work_without_network(db, make_user, settings):
    settings.AI_PROVIDER = "offline"
    user = make_user()
    kitchen = embedded(user, "Kitchen", "Knead the dough with flour and yeast.\n\nBake the bread in a hot oven.")
    garden = embedded(user, "Garden", "Water the tomatoes every morning.\n\nPrune the roses in early spring.")

    hits = chunk_search(user=user, query="how to bake bread in the oven", top_k=3)

    assert (hits[0].document_id, hits[0].document_title) == (kitchen.pk, "Kitchen")
    assert hits[0].text == "Knead the dough with flour and yeast.\n\nBake the bread in a hot oven."
    assert {hit.document_id for hit in hits} == {kitchen.pk, garden.pk}
    assert hits[0].score > hits[-1].score
    assert set(DocumentChunk.objects.values_list("embedding_model", flat=True)) == {"offline-hashing-1"}


def test_search_counts_only_live_chunks_of_todays_model(db, make_user, settings):
    settings.AI_PROVIDER = "offline"
    user = make_user()
    live = embedded(user, "Live", "volcano lava magma")
    deleting = embedded(user, "Deleting", "volcano lava eruption")
    Document.objects.filter(pk=deleting.pk).update(status="DELETING")
    unfinished = DocumentChunk.objects.get(document=live)
    unfinished.pk, unfinished.generation = None, live.generation + 1  # a run still writing
    unfinished.save()

    assert [hit.document_id for hit in chunk_search(user=user, query="volcano lava", top_k=10)] == [live.pk]
    DocumentChunk.objects.update(embedding_model="old-model")  # vectors of another model are not comparable
    assert chunk_search(user=user, query="volcano lava", top_k=10) == []
    assert chunk_search(user=user, query="   ", top_k=10) == []


def test_the_sync_queue_runs_every_five_minutes_on_the_sync_queue():
    job = REGISTRY["process-sync-queue"]

    assert (job.task, job.queue, job.every_seconds) == ("sync.process_sync_queue", queues.SYNC, 300)


def test_a_search_is_planned_for_its_own_query_vector_however_often_it_runs(db, make_user, settings):
    """After DB_PREPARE_THRESHOLD runs the search statement is prepared on the connection, and
    PostgreSQL would switch to a generic plan, made without the query vector: at 100,000 chunks
    that plan sorted every chunk of the owner (a second a search) instead of walking the HNSW
    index. Every run must be planned for its vector (pg_prepared_statements counts the plans)."""
    settings.AI_PROVIDER = "offline"
    user = make_user()
    embedded(user, "Kitchen", "Knead the dough with flour and yeast.\n\nBake the bread in a hot oven.")
    for _ in range(12):
        assert chunk_search(user=user, query="how to bake bread", top_k=3)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%<=>%FROM sync_documentchunk AS chunk%"],
        )
        plans = cursor.fetchall()
    assert len(plans) == 1, plans  # the search was prepared
    generic, custom = plans[0]
    assert (generic, custom) == (0, custom) and custom >= 6
