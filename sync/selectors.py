"""Reads for documents, always scoped to who asks, and semantic search over one's own chunks."""

from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max, QuerySet, Sum
from pgvector.django import CosineDistance

from ai import providers
from sync.models import Document, DocumentBatch, DocumentChunk
from users.models import User


def document_list(*, user: User) -> QuerySet[Document]:
    """The documents `user` may see: their own, or all for staff (without their full text)."""
    queryset = Document.objects.defer("text")
    return queryset if user.is_staff else queryset.filter(owner=user)


def document_batch_list(*, user: User) -> QuerySet[DocumentBatch]:
    """The batches `user` may filter by: their own, or all for staff."""
    return DocumentBatch.objects.all() if user.is_staff else DocumentBatch.objects.filter(owner=user)


@dataclass(frozen=True)
class ChunkHit:
    """A chunk that matched a query; `score` is the cosine similarity (1 is identical)."""

    document_id: int
    document_title: str
    chunk_id: int
    index: int
    text: str
    score: float


def search_top_k(top_k: int | None) -> int:
    """How many results a search returns: the default if not asked, never above the cap."""
    return max(1, min(top_k or settings.DOCUMENT_SEARCH_DEFAULT_TOP_K, settings.DOCUMENT_SEARCH_MAX_TOP_K))


def chunk_search(*, user: User, query: str, top_k: int) -> list[ChunkHit]:
    """The `top_k` chunks of `user`'s own documents nearest to `query`, best first.

    Only live chunks count: those of the document's current generation, embedded with today's
    model (vectors of another model are not comparable), of documents not being deleted.
    Raises `ai.providers.ProviderError` when the query cannot be embedded.
    """
    query = query.strip()
    if not query:
        return []
    embedded = providers.embed([query])
    distance = CosineDistance("embedding", embedded.vectors[0])
    chunks = (
        DocumentChunk.objects.filter(owner=user, embedding_model=embedded.model, generation=F("document__generation"))
        .exclude(document__status=Document.Status.DELETING)
        .annotate(distance=distance)
        .order_by("distance")
        .values("pk", "document_id", "document__title", "index", "text", "distance")[: search_top_k(top_k)]
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            # pgvector 0.8: keep walking the HNSW graph until enough rows pass the owner filter.
            cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            # Planned for this query vector every time. The statement is prepared after a few runs
            # (DB_PREPARE_THRESHOLD), and PostgreSQL then tries a generic plan, which cannot know
            # the vector: it estimated a few hundred rows, sorted every chunk of the owner by
            # distance instead of walking the index, and took a second at 100,000 chunks.
            cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        rows = list(chunks)
    return [
        ChunkHit(
            document_id=row["document_id"],
            document_title=row["document__title"],
            chunk_id=row["pk"],
            index=row["index"],
            text=row["text"],
            score=round(1.0 - row["distance"], 6),
        )
        for row in rows
    ]


def documents_fingerprint(*, user: User) -> str:
    """Changes whenever any of `user`'s documents is added, re-embedded or deleted (one aggregate)."""
    numbers = Document.objects.filter(owner=user).aggregate(
        count=Count("id"), latest=Max("updated_at"), generations=Sum("generation")
    )
    return f"{numbers['count']}:{numbers['latest'].isoformat() if numbers['latest'] else '-'}:{numbers['generations']}"
