"""Prompt requests (the user's view of their work) and the responses they produced."""

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    """A chat history: its turns are the chat requests that belong to it, in order."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    archived_at = models.DateTimeField(null=True, blank=True, help_text="Archived conversations take no new turns.")

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["owner", "-updated_at"]), models.Index(fields=["archived_at", "updated_at"])]

    def __str__(self) -> str:
        return self.title or f"conversation #{self.pk}"


class PromptRequest(models.Model):
    """Work a user asked for; its `status` is what the user sees."""

    class Kind(models.TextChoices):
        CHAT = "chat", "Chat"
        TRANSLATION = "translation", "Translation"
        IMAGE = "image", "Image"
        QUERY = "query", "Query"

    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        IN_PROGRESS = "IN_PROGRESS", "In progress"
        COMPLETED = "COMPLETED", "Completed"
        FAILED = "FAILED", "Failed"
        CANCELLED = "CANCELLED", "Cancelled"

    FINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="prompt_requests")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CHAT)
    model = models.CharField(max_length=100)
    prompt_text = models.TextField(blank=True)
    input = models.JSONField(default=dict, blank=True, help_text="Kind-specific parameters.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    task_id = models.UUIDField(null=True, blank=True, help_text="The current task's id.")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, null=True, blank=True, related_name="turns"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When it reached a final status.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "status", "-created_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


class PromptResponse(models.Model):
    """The one answer to a request (the one-to-one makes a second impossible)."""

    request = models.OneToOneField(PromptRequest, on_delete=models.CASCADE, related_name="response")
    text = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True, help_text="Structured result for non-chat kinds.")
    file = models.FileField(upload_to="images/%Y/%m/%d/", blank=True, help_text="A generated image.")
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=100)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    task_id = models.UUIDField(null=True, blank=True, help_text="The task run that produced it.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"response to #{self.request_id}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class QueryCache(models.Model):
    """An answer to a question over one user's documents as they were; reused until it expires."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="query_cache")
    key = models.CharField(max_length=64, help_text="SHA-256 of the question, top_k, model and documents' state.")
    answer = models.TextField()
    chunks = models.JSONField(default=list, help_text="The chunks the answer used.")
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=100)
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="query_cache_one_per_owner_key")]

    def __str__(self) -> str:
        return f"cached answer {self.key[:8]} for {self.owner}"
