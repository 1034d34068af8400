"""Issue 4: semantic search over 100,000 of the caller's chunks against raw pgvector SQL; sync queue throughput.

Seeding (once; later runs reuse it): the caller's chunks and other users' chunks are written
with SQL at the configured width (AI_EMBEDDING_DIMENSIONS). Each chunk is a topic vector plus
noise, normalised; the topics are offline (feature-hashing) embeddings of sentences, the first
of them the very questions the benchmark asks, so the questions land among similar chunks as
they would in a user's own documents. The HNSW index is dropped for the load and built again
with the migration's definition (building once is far cheaper than growing it row by row).

Search: `sync.selectors.chunk_search` (embeds the question, live chunks of the caller only)
against the plain query with the `<=>` operator and the owner filter, in the same transaction
setting (`hnsw.iterative_scan`), in alternating passes, p50 and p99 of each.

Sync queue: documents of another user are put in the sync queue and drained by
`sync_queue_process` in-process (chunk, embed offline, store), in chunks per second, next to
the offline provider embedding the same chunks with no database.
"""

import os
import statistics
import time

from django.conf import settings
from django.db import connection, transaction
from pgvector import Vector

from ai import providers
from bench.common import report
from bench.data import bench_tier, bench_users
from sync.models import Document, DocumentChunk
from sync.selectors import chunk_search
from sync.services.embedding import text_chunks
from sync.services.sync import sync_queue_enqueue, sync_queue_process

CHUNKS = int(os.environ.get("BENCH_CHUNKS", "100000"))
OTHER_CHUNKS = int(os.environ.get("BENCH_OTHER_CHUNKS", str(CHUNKS // 5)))
QUERIES = int(os.environ.get("BENCH_QUERIES", "200"))
SYNC_DOCUMENTS = int(os.environ.get("BENCH_SYNC_DOCUMENTS", "100"))
TOP_K = 5
TOPICS = 200
OTHER_USERS = 4
CHUNKS_PER_DOCUMENT = 1000
NOISE = 0.06  # per dimension; the topic still dominates each chunk's direction
INDEX_SQL = (
    "CREATE INDEX chunk_embedding_hnsw ON sync_documentchunk USING hnsw (embedding vector_cosine_ops) "
    "WITH (m = 16, ef_construction = 64)"
)
WORDS = (
    "invoice contract refund delivery warranty shipping customer account password login payment tax "
    "holiday salary travel expense report meeting budget project deadline release server database backup "
    "security incident policy training laptop printer network office parking lunch insurance pension"
).split()


def _questions() -> list[str]:
    return [
        f"how do I {WORDS[n % len(WORDS)]} the {WORDS[(n * 7 + 3) % len(WORDS)]} {WORDS[(n * 13 + 5) % len(WORDS)]}"
        for n in range(QUERIES)
    ]


def _topics(questions: list[str]) -> list[list[float]]:
    texts = questions[:TOPICS] + [f"{WORDS[n % len(WORDS)]} notes number {n}" for n in range(TOPICS)]
    return providers.embed(texts[:TOPICS]).vectors


def _seeded(owner_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sync_documentchunk WHERE owner_id = %s", [owner_id])
        mine = cursor.fetchone()[0]
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'chunk_embedding_hnsw'")
        indexed = cursor.fetchone() is not None
    if mine == CHUNKS and not indexed:  # an earlier run stopped while building it
        _build_index()
    return mine == CHUNKS


def _seed(caller_id: int, other_ids: list[int], topics: list[list[float]]) -> None:
    """Documents of CHUNKS_PER_DOCUMENT chunks each for the caller (CHUNKS) and the others (OTHER_CHUNKS)."""
    model = providers.embedding_model()
    dimensions = settings.AI_EMBEDDING_DIMENSIONS
    Document.objects.filter(owner_id__in=[caller_id, *other_ids]).delete()
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS chunk_embedding_hnsw")
        cursor.execute("CREATE TEMP TABLE bench_topic (topic int PRIMARY KEY, embedding vector)")
        cursor.executemany(
            "INSERT INTO bench_topic VALUES (%s, %s::vector)",
            [(n, Vector(vector).to_text()) for n, vector in enumerate(topics)],
        )
        owners = [(caller_id, CHUNKS)] + [(other, OTHER_CHUNKS // len(other_ids)) for other in other_ids]
        for owner_id, count in owners:
            documents = max(1, count // CHUNKS_PER_DOCUMENT)
            cursor.execute(
                """
                INSERT INTO sync_document (owner_id, title, source, file_name, content_type, size_bytes, text, checksum,
                                           status, error, chunk_count, embedding_model, generation, last_generation,
                                           created_at, updated_at, embedded_at)
                SELECT %(owner)s, 'benchmark document ' || d, 'text', '', 'text/plain', 0, 'synthetic',
                       md5(%(owner)s || '-' || d), 'EMBEDDED', '', %(per)s, %(model)s, 1, 1, now(), now(), now()
                  FROM generate_series(1, %(documents)s) AS d
                """,
                {"owner": owner_id, "documents": documents, "per": count // documents, "model": model},
            )
            cursor.execute(
                """
                INSERT INTO sync_documentchunk (document_id, owner_id, generation, index, text, embedding,
                                                embedding_model, embedding_dimensions, created_at)
                SELECT doc.id, %(owner)s, 1, i, 'synthetic chunk ' || i,
                       l2_normalize(t.embedding + (SELECT array_agg((random() - 0.5) * %(noise)s)
                                                     FROM generate_series(1, %(dimensions)s) WHERE i >= 0)::vector),
                       %(model)s, %(dimensions)s, now()
                  FROM sync_document doc
                 CROSS JOIN generate_series(0, %(per)s - 1) AS i
                  JOIN bench_topic t ON t.topic = (doc.id * 31 + i) %% %(topics)s
                 WHERE doc.owner_id = %(owner)s
                """,
                {
                    "owner": owner_id,
                    "per": count // documents,
                    "noise": NOISE,
                    "dimensions": dimensions,
                    "model": model,
                    "topics": len(topics),
                },
            )
        cursor.execute("DROP TABLE bench_topic")
    _build_index()


def _build_index() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '2GB'")  # the graph fits, so the build stays fast
        cursor.execute(INDEX_SQL)
        cursor.execute("RESET maintenance_work_mem")
        cursor.execute("ANALYZE sync_document, sync_documentchunk")


def _raw_search(owner_id: int, floats: list[float]) -> list[int]:
    vector = Vector(floats).to_text()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        # As sync.selectors.chunk_search does: a prepared statement's generic plan, made without
        # the vector, sorts every chunk of the owner instead of walking the index (a second each).
        cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        cursor.execute(
            "SELECT id, document_id, index, text, embedding <=> %s::vector AS distance FROM sync_documentchunk "
            "WHERE owner_id = %s ORDER BY embedding <=> %s::vector LIMIT %s",
            [vector, owner_id, vector, TOP_K],
        )
        return [row[0] for row in cursor.fetchall()]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _search_rows(caller: object) -> list[dict]:
    """Whole passes over the questions, one side at a time, in the order R P P R R P after a warm-up.

    A pass per side rather than the two side by side per question: the index (about a gigabyte
    at 1536 dimensions) does not fit the server's shared buffers, and whichever ran second on a
    question would find the pages the first had just read.
    """
    questions = _questions()
    vectors = providers.embed(questions).vectors  # the baseline is handed the vector; the project embeds
    samples: dict[str, list[float]] = {"project": [], "baseline": []}
    results: dict[str, list[list[int]]] = {"project": [], "baseline": []}
    for side in ("warm-up", "baseline", "project", "project", "baseline", "baseline", "project"):
        for question, vector in zip(questions, vectors, strict=True):
            if side == "warm-up":  # brings the index into memory, whatever ran before
                _raw_search(caller.pk, vector)
                continue
            started = time.perf_counter()
            if side == "project":
                ids = [hit.chunk_id for hit in chunk_search(user=caller, query=question, top_k=TOP_K)]
            else:
                ids = _raw_search(caller.pk, vector)
            samples[side].append(time.perf_counter() - started)
            results[side].append(ids)
    same = sum(a == b for a, b in zip(results["project"], results["baseline"], strict=True))
    rows = []
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        mine, raw = _percentile(samples["project"], fraction) * 1000, _percentile(samples["baseline"], fraction) * 1000
        rows.append(
            {
                "figure": f"search {label}, top {TOP_K} of {CHUNKS:,} own chunks ({OTHER_CHUNKS:,} of others), "
                f"3 passes of {len(questions)} questions each, same results in {same} of {len(results['project'])}",
                "unit": " ms",
                "project": mine,
                "baseline": raw,
                "ratio": mine / raw,
                "target": "<= 1.5",
                "ok": mine / raw <= 1.5,
            }
        )
    return rows


def _sync_queue_row(owner: object) -> dict:
    Document.objects.filter(owner=owner).delete()
    paragraph = " ".join(WORDS[(n * 5) % len(WORDS)] for n in range(60))
    body = "\n\n".join(f"{paragraph} part {part}" for part in range(20))
    texts = [f"Document {n}.\n\n{body}" for n in range(SYNC_DOCUMENTS)]
    documents = Document.objects.bulk_create(
        Document(owner=owner, title=f"sync {n}", text=text, checksum=f"bench-sync-{n}", size_bytes=len(text))
        for n, text in enumerate(texts)
    )
    sync_queue_enqueue(document_ids=[document.pk for document in documents])
    started = time.perf_counter()
    outcome = sync_queue_process(claim_size=10, time_budget=600)
    elapsed = time.perf_counter() - started
    chunks = DocumentChunk.objects.filter(owner=owner).count()
    if len(outcome.processed) != SYNC_DOCUMENTS or outcome.failed:
        raise RuntimeError(f"sync queue: {outcome.counts()} of {SYNC_DOCUMENTS} documents")
    pieces = [chunk for text in texts for chunk in text_chunks(text, max_chars=settings.DOCUMENT_CHUNK_CHARS)]
    batch = max(1, settings.AI_EMBEDDING_BATCH_SIZE)
    timings = []
    for _ in range(3):
        started_embed = time.perf_counter()
        for start in range(0, len(pieces), batch):
            providers.embed(pieces[start : start + batch])
        timings.append(time.perf_counter() - started_embed)
    Document.objects.filter(owner=owner).delete()
    rate, embed_rate = chunks / elapsed, len(pieces) / statistics.median(timings)
    return {
        "figure": f"sync queue, {SYNC_DOCUMENTS} documents, {chunks:,} chunks, offline embeddings, vs embedding alone",
        "unit": " chunks/s",
        "project": rate,
        "baseline": embed_rate,
        "ratio": rate / embed_rate,
    }


def run() -> None:
    tier = bench_tier("b-search", max_in_flight=2)
    caller, *others = bench_users("b-search", 1 + OTHER_USERS, tier)
    (syncer,) = bench_users("b-search-sync", 1, tier)
    if not _seeded(caller.pk):
        started = time.perf_counter()
        _seed(caller.pk, [other.pk for other in others], _topics(_questions()))
        seconds = time.perf_counter() - started
        print(f"  (seeded {CHUNKS + OTHER_CHUNKS:,} chunks in {seconds:.0f} s; later runs reuse them)")
    rows = _search_rows(caller)
    rows.append(_sync_queue_row(syncer))
    report("search", rows)
