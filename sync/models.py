"""Documents, their embedded chunks (pgvector), batches of uploads and the sync queue."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from pgvector.django import HnswIndex, VectorField


class DocumentBatch(models.Model):
    """Documents uploaded together; its id is the group id the batch endpoint answers with."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="document_batches")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "document batches"

    def __str__(self) -> str:
        return f"batch {self.id}"


class Document(models.Model):
    """A user's text (typed or extracted from a file) that is chunked and embedded for search."""

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        PROCESSING = "PROCESSING", "Processing"
        EMBEDDED = "EMBEDDED", "Embedded"
        FAILED = "FAILED", "Failed"
        DELETING = "DELETING", "Deleting"

    class Source(models.TextChoices):
        TEXT = "text", "Text"
        FILE = "file", "Uploaded file"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents")
    batch = models.ForeignKey(DocumentBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="documents")
    title = models.CharField(max_length=255)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.TEXT)
    file_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0, help_text="The file's size, or the text's in UTF-8.")
    text = models.TextField(help_text="The extracted text that is chunked and embedded.")
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the extracted text.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=100, blank=True, help_text="The model of the live chunks.")
    # Each embedding run writes its chunks under a new generation and switches `generation` to it
    # only when all are stored, so search never sees half a document and large documents never
    # sit in memory whole.
    generation = models.PositiveIntegerField(default=0, help_text="The chunk generation search uses.")
    last_generation = models.PositiveIntegerField(default=0, help_text="The newest generation an embedding run took.")
    task_id = models.UUIDField(null=True, blank=True, help_text="The current task's id.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    embedded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "status", "-created_at"]),
            models.Index(fields=["status", "embedding_model"]),
        ]
        constraints = [
            # Identical content is embedded once per owner; a copy being deleted does not count.
            models.UniqueConstraint(
                fields=["owner", "checksum"], condition=~Q(status="DELETING"), name="document_one_live_copy_per_owner"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title} ({self.status})"


class DocumentChunk(models.Model):
    """A piece of a document's text and its embedding."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    # The owner again, so that search filters chunks without reading documents first.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="document_chunks")
    generation = models.PositiveIntegerField()
    index = models.PositiveIntegerField(help_text="Position in the document, from 0.")
    text = models.TextField()
    embedding = VectorField(dimensions=settings.AI_EMBEDDING_DIMENSIONS)
    embedding_model = models.CharField(max_length=100)
    embedding_dimensions = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document", "index"]
        constraints = [
            models.UniqueConstraint(fields=["document", "generation", "index"], name="chunk_unique_position"),
        ]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["owner", "embedding_model"]),
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of document {self.document_id}"


class SyncQueueItem(models.Model):
    """A document waiting to be embedded again; the periodic job claims and drains these."""

    class Reason(models.TextChoices):
        MODEL_CHANGED = "model_changed", "Embedding model changed"
        RESYNC = "resync", "Re-sync requested"

    document = models.OneToOneField(Document, on_delete=models.CASCADE, related_name="sync_queue_item")
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.RESYNC)
    enqueued_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a run took it; empty while waiting.")
    claimed_by = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["enqueued_at", "id"]
        indexes = [models.Index(fields=["claimed_at", "enqueued_at"])]

    def __str__(self) -> str:
        return f"sync of document {self.document_id} ({self.reason})"
