"""Embedding documents: chunk the text, embed the chunks in batches, switch generations; deletion."""

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from ai import providers
from sync.models import Document, DocumentChunk

logger = logging.getLogger(__name__)
Status = Document.Status


def text_chunks(text: str, *, max_chars: int) -> list[str]:
    """Paragraphs packed into chunks of at most `max_chars`; longer paragraphs are cut between words."""
    pieces: list[str] = []
    for paragraph in text.split("\n\n"):
        paragraph = " ".join(paragraph.split())
        if paragraph:
            pieces.extend(_cut(paragraph, max_chars))
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > max_chars:
            chunks.append(current)
            current = piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _cut(paragraph: str, max_chars: int) -> list[str]:
    if len(paragraph) <= max_chars:
        return [paragraph]
    parts: list[str] = []
    current = ""
    for word in paragraph.split(" "):
        while len(word) > max_chars:  # one "word" longer than a chunk (a URL, base64): cut it
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:max_chars])
            word = word[max_chars:]
        if current and len(current) + 1 + len(word) > max_chars:
            parts.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        parts.append(current)
    return parts


@dataclass(frozen=True)
class SyncRun:
    """What one sync call did: the document as it left it, and whether this call embedded it.

    `embedded` is False when there was nothing to do (the document is gone, being deleted, or,
    without `force`, already embedded with today's model); True when this call took a generation
    and ran the provider, whether that ended EMBEDDED, FAILED or outrun by a newer run.
    """

    document: Document | None
    embedded: bool


def document_sync(*, document_id: int, force: bool = False) -> Document | None:
    """Chunk and embed a document; search switches to the new chunks only when all are stored.

    Safe to run twice, even at the same time: each run writes its own generation of chunks, and
    only the newest finished run becomes live. Without `force`, a document already embedded with
    today's model is returned untouched (a redelivered task does nothing).
    """
    return document_sync_run(document_id=document_id, force=force).document


def document_sync_run(*, document_id: int, force: bool = False) -> SyncRun:
    """`document_sync`, also telling whether this call embedded the document or found nothing to do.

    The "nothing to do" decision is taken under the document's row lock, in the transaction that
    takes the new generation, so of two calls without `force` at most one embeds a document that
    only needed today's model.
    """
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None or document.status == Status.DELETING:
            return SyncRun(document, embedded=False)
        if not force and document.status == Status.EMBEDDED and document.embedding_model == providers.embedding_model():
            return SyncRun(document, embedded=False)
        document.last_generation += 1
        generation = document.last_generation
        document.status = Status.PROCESSING
        document.save(update_fields=["last_generation", "status", "updated_at"])

    try:
        count, model = _embed_generation(document, generation)
    except providers.BudgetExhausted:
        # Not a failure: the provider budget is spent for now. The caller tries again later.
        DocumentChunk.objects.filter(document_id=document_id, generation=generation).delete()
        raise
    except providers.ProviderError as exc:
        DocumentChunk.objects.filter(document_id=document_id, generation=generation).delete()
        return _attempted(document_fail(document_id=document_id, error=str(exc), generation=generation))

    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).defer("text").first()
        if document is None:
            return SyncRun(None, embedded=False)  # deleted meanwhile; its chunks went with it
        if document.status == Status.DELETING or document.generation > generation:
            # Being deleted, or a newer run finished first: this run's chunks are not wanted.
            DocumentChunk.objects.filter(document_id=document_id, generation=generation).delete()
            return _attempted(document)
        DocumentChunk.objects.filter(document_id=document_id, generation__lt=generation).delete()
        document.generation = generation
        document.chunk_count = count
        document.embedding_model = model
        document.status = Status.EMBEDDED
        document.error = ""
        document.embedded_at = timezone.now()
        document.save(
            update_fields=[
                "generation",
                "chunk_count",
                "embedding_model",
                "status",
                "error",
                "embedded_at",
                "updated_at",
            ]
        )
    return SyncRun(document, embedded=True)


def _embed_generation(document: Document, generation: int) -> tuple[int, str]:
    """Store the document's chunks under `generation`, one provider batch at a time; (count, model)."""
    chunks = text_chunks(document.text, max_chars=settings.DOCUMENT_CHUNK_CHARS)
    batch_size = max(1, settings.AI_EMBEDDING_BATCH_SIZE)
    model = providers.embedding_model()
    for start in range(0, len(chunks), batch_size):
        texts = chunks[start : start + batch_size]
        result = providers.embed(texts)
        model = result.model
        DocumentChunk.objects.bulk_create(
            DocumentChunk(
                document_id=document.pk,
                owner_id=document.owner_id,
                generation=generation,
                index=start + offset,
                text=text,
                embedding=vector,
                embedding_model=result.model,
                embedding_dimensions=result.dimensions,
            )
            for offset, (text, vector) in enumerate(zip(texts, result.vectors, strict=True))
        )
    return len(chunks), model


def document_fail(*, document_id: int, error: str, generation: int | None = None) -> Document | None:
    """Mark a document FAILED with a readable reason, unless it is being deleted or a newer run succeeded."""
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).defer("text").first()
        if document is None or document.status == Status.DELETING:
            return document
        if generation is not None and document.generation > generation:
            return document
        document.status = Status.FAILED
        document.error = error
        document.save(update_fields=["status", "error", "updated_at"])
    logger.info("document %s failed: %s", document_id, error)
    return document


def document_sync_guarded(*, document_id: int, force: bool) -> SyncRun:
    """`document_sync_run` for loops over many documents: any failure ends that one FAILED, not the loop."""
    try:
        return _budget_patient(document_id=document_id, force=force)
    except DatabaseError:
        raise  # the database itself is in trouble: nothing more can be stored, stop
    except Exception as exc:
        logger.exception("embedding document %s failed", document_id)
        error = f"Internal error while embedding: {type(exc).__name__}"
        return _attempted(document_fail(document_id=document_id, error=error))


def _budget_patient(*, document_id: int, force: bool) -> SyncRun:
    """`document_sync_run`, waiting in place while the provider budget is spent (these loops are long anyway)."""
    while True:
        try:
            return document_sync_run(document_id=document_id, force=force)
        except providers.BudgetExhausted as exc:
            logger.info("document %s waits %.0f s for the provider budget", document_id, exc.retry_after)
            time.sleep(exc.retry_after)


def _attempted(document: Document | None) -> SyncRun:
    """A run that went to the provider but did not finish as the live generation (failed or superseded)."""
    return SyncRun(document, embedded=document is not None and document.status != Status.DELETING)


def document_embeddings_delete(*, document_id: int, batch_size: int = 1000) -> dict | None:
    """Delete a DELETING document's chunks in short transactions, then the document itself."""
    if not Document.objects.filter(pk=document_id, status=Status.DELETING).exists():
        return None  # gone already (a redelivery) or not being deleted
    deleted = 0
    while ids := list(DocumentChunk.objects.filter(document_id=document_id).values_list("pk", flat=True)[:batch_size]):
        deleted += DocumentChunk.objects.filter(pk__in=ids).delete()[0]
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).defer("text").first()
        if document is not None:
            deleted += document.chunks.count()  # a run that was still writing; the cascade takes them
            document.delete()
    return {"document_id": document_id, "chunks_deleted": deleted}
