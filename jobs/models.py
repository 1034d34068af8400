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
    fair_share = models.BooleanField(
        default=False, help_text="Held back per owner (in-flight cap) and released round robin between owners."
    )
    worker = models.CharField(max_length=255, blank=True)
    request_id = models.CharField(
        max_length=128, blank=True, default="", help_text="The API request that started it; sent with every send."
    )

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
            # The dashboard's rates, durations and failures: finished records over a time window.
            models.Index(fields=["state", "finished_at"], name="jobs_state_finished_idx"),
            models.Index(fields=["target_type", "target_id"]),
            models.Index(
                fields=["owner", "queue", "created_at"],
                condition=models.Q(state="WAITING", fair_share=True),
                name="jobs_fair_waiting_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES


class FairLane(models.Model):
    """One owner's line of fair-share work in one queue: how much waits, how much runs, whose turn.

    Releasing picks the lane with the lowest `pass_value` that has work waiting and a free slot,
    then advances its pass by 1/weight (stride scheduling): a round robin between owners in which
    an owner of weight 2 gets two turns per round.
    """

    queue = models.CharField(max_length=64)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="fair_lanes")
    waiting = models.PositiveIntegerField(default=0)
    in_flight = models.PositiveIntegerField(default=0)
    cap = models.PositiveIntegerField(default=1, help_text="How many may run at once.")
    weight = models.PositiveSmallIntegerField(default=1)
    pass_value = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "owner"], name="jobs_fair_lane_one_per_owner_queue")]
        indexes = [
            models.Index(
                fields=["queue", "pass_value"],
                condition=models.Q(waiting__gt=0, in_flight__lt=models.F("cap")),
                name="jobs_fair_lane_ready_idx",
            ),
            # The front of the round, read by every fair dispatch: lanes are kept once made (one
            # per owner and queue), so without it each dispatch would read every owner's lane.
            models.Index(
                fields=["queue", "pass_value"], condition=models.Q(waiting__gt=0), name="jobs_fair_lane_waiting_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner} on {self.queue}: {self.waiting} waiting, {self.in_flight}/{self.cap} running"
