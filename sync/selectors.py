"""Reads for documents, always scoped to who asks, and semantic search over one's own chunks."""

from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, QuerySet, Sum
from pgvector import Vector

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


# The live chunks of one owner nearest to a vector (see chunk_search). Written out rather than
# built by the ORM on every search (about 1 ms of CPU each); sync/tests/test_search.py checks
# what it returns. ORDER BY repeats the distance so that pgvector's HNSW index serves it.
_SEARCH_SQL = f"""
    SELECT chunk.id, chunk.document_id, document.title, chunk.index, chunk.text,
           chunk.embedding <=> %(vector)s::vector AS distance
      FROM {DocumentChunk._meta.db_table} AS chunk
      JOIN {Document._meta.db_table} AS document ON document.id = chunk.document_id
     WHERE chunk.owner_id = %(owner)s AND chunk.embedding_model = %(model)s
       AND chunk.generation = document.generation AND document.status <> %(deleting)s
  ORDER BY chunk.embedding <=> %(vector)s::vector
     LIMIT %(limit)s
"""

# pgvector 0.8: keep walking the HNSW graph until enough rows pass the owner filter. And plan
# the search for its own vector every time: the statement is prepared after a few runs
# (DB_PREPARE_THRESHOLD), and PostgreSQL then tries a generic plan, which cannot know the vector:
# it estimated a few hundred rows and sorted every chunk of the owner by distance instead of
# walking the index, a second a search at 100,000 chunks. One statement for both settings.
_SEARCH_SETTINGS_SQL = (
    "SELECT set_config('hnsw.iterative_scan', 'strict_order', true), "
    "set_config('plan_cache_mode', 'force_custom_plan', true)"
)


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
    params = {
        "vector": Vector(embedded.vectors[0]).to_text(),
        "owner": user.pk,
        "model": embedded.model,
        "deleting": Document.Status.DELETING.value,
        "limit": search_top_k(top_k),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_SEARCH_SETTINGS_SQL)  # for this transaction only
        cursor.execute(_SEARCH_SQL, params)
        rows = cursor.fetchall()
    return [
        ChunkHit(
            document_id=document_id,
            document_title=title,
            chunk_id=chunk_id,
            index=index,
            text=text,
            score=round(1.0 - distance, 6),
        )
        for chunk_id, document_id, title, index, text, distance in rows
    ]


def documents_fingerprint(*, user: User) -> str:
    """Changes whenever any of `user`'s documents is added, re-embedded or deleted (one aggregate)."""
    numbers = Document.objects.filter(owner=user).aggregate(
        count=Count("id"), latest=Max("updated_at"), generations=Sum("generation")
    )
    return f"{numbers['count']}:{numbers['latest'].isoformat() if numbers['latest'] else '-'}:{numbers['generations']}"
