"""Reads for documents, always scoped to who asks, and semantic search over one's own chunks."""

from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from pgvector import Vector

from ai import providers
from sync.models import Document, DocumentChunk
from users.models import User


def document_list(*, user: User) -> QuerySet[Document]:
    """The documents `user` may see: their own, or all for staff (without their full text)."""
    queryset = Document.objects.defer("text")
    return queryset if user.is_staff else queryset.filter(owner=user)


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


# Written out rather than built with the ORM: this runs for every search and question, and
# compiling the equivalent queryset (a join, an annotation, values) took as long as the HNSW
# search itself (bench/bench_search.py). The vector goes in once, as text, cast to `vector`.
_SEARCH_SQL = f"""
    SELECT chunk.id, chunk.document_id, document.title, chunk.index, chunk.text,
           chunk.embedding <=> %(query)s::vector AS distance
      FROM {DocumentChunk._meta.db_table} AS chunk
      JOIN {Document._meta.db_table} AS document ON document.id = chunk.document_id
     WHERE chunk.owner_id = %(owner)s
       AND chunk.embedding_model = %(model)s
       AND chunk.generation = document.generation
       AND document.status <> %(deleting)s
     ORDER BY distance
     LIMIT %(top_k)s
"""


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
        "query": Vector(embedded.vectors[0]).to_text(),
        "owner": user.pk,
        "model": embedded.model,
        "deleting": Document.Status.DELETING,
        "top_k": search_top_k(top_k),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        # pgvector 0.8: keep walking the HNSW graph until enough rows pass the owner filter.
        cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        cursor.execute(_SEARCH_SQL, params)
        rows = cursor.fetchall()
    return [
        ChunkHit(document_id=document_id, document_title=title, chunk_id=chunk_id, index=index, text=text,
                 score=round(1.0 - distance, 6))
        for chunk_id, document_id, title, index, text, distance in rows
    ]  # fmt: skip
