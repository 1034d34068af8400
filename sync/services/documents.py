"""Accepting documents (one, a batch, a duplicate) and asking for their deletion."""

import hashlib
import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from jobs import queues
from jobs.services import task_dispatch
from sync.extraction import file_text, normalise_text, size_check
from sync.models import Document, DocumentBatch, SyncQueueItem
from sync.services import DELETE_TASK, SYNC_TASK
from users.models import Tier, User
from users.services import user_tier

logger = logging.getLogger(__name__)
Status = Document.Status


@dataclass(frozen=True)
class DocumentText:
    """What an upload became: a title, the text, and where it came from."""

    title: str
    text: str
    source: str = Document.Source.TEXT
    file_name: str = ""
    content_type: str = ""
    size_bytes: int | None = None  # the text's UTF-8 size when not given


@dataclass(frozen=True)
class DocumentAccepted:
    """The document an upload created, or the existing one with the same content (`duplicate`)."""

    document: Document
    duplicate: bool = False
    started: bool = True  # whether background work was started (202) or not (200)


def text_checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def document_max_bytes(*, user: User) -> int:
    """The largest upload `user`'s tier allows."""
    return user_tier(user).max_document_bytes


@transaction.atomic
def document_create(*, user: User, upload: DocumentText) -> DocumentAccepted:
    """Accept one document: the row and its task record commit together; identical content is not embedded twice."""
    tier = user_tier(user)
    return _accept(user=user, tier=tier, upload=upload, batch=None)


def document_create_from_file(*, user: User, file: UploadedFile, title: str = "") -> DocumentAccepted:
    """Accept an uploaded file: its size is checked before it is read, its text extracted, then as text."""
    tier = user_tier(user)
    extracted = file_text(file, max_bytes=tier.max_document_bytes, tier_name=tier.name)
    upload = DocumentText(
        title=title or extracted.file_name,
        text=extracted.text,
        source=Document.Source.FILE,
        file_name=extracted.file_name,
        content_type=extracted.content_type,
        size_bytes=extracted.size_bytes,
    )
    return document_create(user=user, upload=upload)


@transaction.atomic
def document_batch_create(*, user: User, uploads: list[DocumentText]) -> tuple[DocumentBatch, list[DocumentAccepted]]:
    """Accept many documents at once (all or none); a batch counts as one upload against the size limit."""
    tier = user_tier(user)
    total = sum(_size(upload) for upload in uploads)
    size_check(size_bytes=total, max_bytes=tier.max_document_bytes, tier_name=tier.name, what="The batch")
    batch = DocumentBatch.objects.create(owner=user)
    return batch, [_accept(user=user, tier=tier, upload=upload, batch=batch) for upload in uploads]


def _size(upload: DocumentText) -> int:
    return upload.size_bytes if upload.size_bytes is not None else len(upload.text.encode())


def _accept(*, user: User, tier: Tier, upload: DocumentText, batch: DocumentBatch | None) -> DocumentAccepted:
    size_check(size_bytes=_size(upload), max_bytes=tier.max_document_bytes, tier_name=tier.name)
    text = normalise_text(upload.text)
    if not text:
        raise ValidationError({"text": "The text is empty."})
    checksum = text_checksum(text)
    existing = _live_copy(user, checksum)
    if existing is not None:
        return _accept_duplicate(existing)
    try:
        with transaction.atomic():  # a savepoint: a concurrent identical upload may win the race
            document = Document.objects.create(
                owner=user,
                batch=batch,
                title=upload.title.strip()[:255] or upload.file_name or "Untitled",
                source=upload.source,
                file_name=upload.file_name,
                content_type=upload.content_type,
                size_bytes=_size(upload),
                text=text,
                checksum=checksum,
            )
    except IntegrityError:
        existing = _live_copy(user, checksum)
        if existing is None:
            raise
        return _accept_duplicate(existing)
    _dispatch_sync(document)
    return DocumentAccepted(document=document)


def _live_copy(user: User, checksum: str) -> Document | None:
    return (
        Document.objects.select_for_update()
        .filter(owner=user, checksum=checksum)
        .exclude(status=Status.DELETING)
        .defer("text")
        .first()
    )


def _accept_duplicate(document: Document) -> DocumentAccepted:
    """The same content again: nothing to embed, unless the earlier attempt failed."""
    if document.status != Status.FAILED:
        return DocumentAccepted(document=document, duplicate=True, started=False)
    document.status = Status.PENDING
    document.error = ""
    document.save(update_fields=["status", "error", "updated_at"])
    _dispatch_sync(document)
    return DocumentAccepted(document=document, duplicate=True)


def _dispatch_sync(document: Document) -> None:
    record = task_dispatch(name=SYNC_TASK, queue=queues.SYNC, args=[document.pk], owner=document.owner, target=document)
    document.task_id = record.id
    document.save(update_fields=["task_id"])


@transaction.atomic
def document_delete(*, document_id: int) -> Document | None:
    """Mark a document DELETING (search stops seeing it at once); a task deletes its chunks and row."""
    document = Document.objects.select_for_update().filter(pk=document_id).defer("text").first()
    if document is None or document.status == Status.DELETING:
        return document
    document.status = Status.DELETING
    document.save(update_fields=["status", "updated_at"])
    SyncQueueItem.objects.filter(document=document).delete()
    record = task_dispatch(
        name=DELETE_TASK, queue=queues.SYNC, args=[document.pk], owner=document.owner, target=document
    )
    document.task_id = record.id
    document.save(update_fields=["task_id"])
    return document
