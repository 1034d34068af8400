"""The record of every dispatched task: the source of truth for its state and owner."""

import uuid

from django.conf import settings
from django.db import models


class TaskRecord(models.Model):
    """One unit of background work, recorded before its message exists."""

    class State(models.TextChoices):
        WAITING = "WAITING", "Waiting (not sent yet)"
        QUEUED = "QUEUED", "Queued (sent, not started)"
        STARTED = "STARTED", "Started"
        PROGRESS = "PROGRESS", "In progress"
        RETRY = "RETRY", "Retrying"
        SUCCESS = "SUCCESS", "Succeeded"
        FAILURE = "FAILURE", "Failed"
        REVOKED = "REVOKED", "Revoked"

    FINAL_STATES = (State.SUCCESS, State.FAILURE, State.REVOKED)
    UNSENT_STATES = (State.WAITING, State.QUEUED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, help_text="The Celery task id.")
    name = models.CharField(max_length=200, help_text="The Celery task name.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="task_records"
    )
    queue = models.CharField(max_length=64)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    target_type = models.CharField(max_length=100, blank=True, help_text="What it acts on: app_label.model.")
    target_id = models.CharField(max_length=64, blank=True)

    state = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    progress_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    progress_message = models.CharField(max_length=255, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    sends = models.PositiveSmallIntegerField(default=0, help_text="How many times it was sent to the broker.")
    worker = models.CharField(max_length=255, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last sign of life.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["state", "updated_at"]),
            models.Index(fields=["target_type", "target_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES
