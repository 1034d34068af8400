"""Webhook endpoints and their delivery log, notifications, email preferences, system messages."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from notifications import events


class WebhookEndpoint(models.Model):
    """A URL of a user's system that receives signed events."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    events = ArrayField(models.CharField(max_length=40, choices=events.WEBHOOK_EVENT_CHOICES))
    description = models.CharField(max_length=200, blank=True)
    # Kept in clear because signing needs it; the API shows it only in the answer to its creation.
    secret = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0, help_text="Failed deliveries since the last success.")
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "is_active"])]

    def __str__(self) -> str:
        return f"{self.url} ({self.owner})"

    @property
    def secret_hint(self) -> str:
        return f"{self.secret[:10]}…" if self.secret else ""


class FanOut(models.Model):
    """One message to many users, walked in batches of ascending user ids (keyset pagination)."""

    class Kind(models.TextChoices):
        SYSTEM = "system", "System notification"
        USAGE_STATISTICS = "usage.statistics", "Usage statistics"

    class State(models.TextChoices):
        RUNNING = "RUNNING", "Running"
        DONE = "DONE", "Done"
        FAILED = "FAILED", "Failed"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    key = models.CharField(max_length=100, unique=True, help_text="One run per key (two beats make one run).")
    event_id = models.UUIDField(default=uuid.uuid4, help_text="X-Webhook-Id of every delivery of this run.")
    system_notification = models.OneToOneField(
        "SystemNotification", on_delete=models.CASCADE, null=True, blank=True, related_name="fan_out"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    cursor_user_id = models.BigIntegerField(default=0, help_text="Every user id up to this one is done.")
    batches = models.PositiveIntegerField(default=0)
    recipients = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"


class Delivery(models.Model):
    """One event for one endpoint, and how sending it went."""

    class State(models.TextChoices):
        PENDING = "PENDING", "Pending"
        RETRYING = "RETRYING", "Retrying"
        DELIVERED = "DELIVERED", "Delivered"
        FAILED = "FAILED", "Failed"

    FINAL_STATES = (State.DELIVERED, State.FAILED)
    OPEN_STATES = (State.PENDING, State.RETRYING)

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40, choices=events.WEBHOOK_EVENT_CHOICES)
    event_id = models.UUIDField(default=uuid.uuid4, help_text="Sent as X-Webhook-Id; the same on every attempt.")
    payload = models.JSONField(default=dict)
    fan_out = models.ForeignKey(FanOut, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries")
    target_type = models.CharField(max_length=100, blank=True, help_text="What the event is about: app.model.")
    target_id = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(help_text="Attempts allowed; 'retry now' grants more.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Of the last attempt.")
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            # A fan-out batch that runs twice records each event once per endpoint.
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="delivery_one_per_endpoint_and_event")
        ]
        indexes = [models.Index(fields=["fan_out", "state"]), models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} -> {self.endpoint_id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES


class SystemNotification(models.Model):
    """A message from the operators to every user or to one tier's users."""

    title = models.CharField(max_length=200)
    body = models.TextField()
    tier = models.ForeignKey(
        "users.Tier", on_delete=models.PROTECT, null=True, blank=True, help_text="Empty: every user."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When sending was started.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title

    @property
    def status(self) -> str:
        """DRAFT (not sent), PENDING (sending requested), then its fan-out's RUNNING, DONE or FAILED."""
        fan_out = getattr(self, "fan_out", None)  # the reverse one-to-one raises when missing
        if fan_out is not None:
            return fan_out.state
        return "PENDING" if self.sent_at else "DRAFT"


class Notification(models.Model):
    """A message for one user: listed by the API, emailed when the user wants that event by email."""

    class EmailState(models.TextChoices):
        NOT_WANTED = "NOT_WANTED", "Not wanted (opted out or no address)"
        PENDING = "PENDING", "Pending"
        SENT = "SENT", "Sent"
        FAILED = "FAILED", "Failed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=40, choices=events.EMAIL_EVENT_CHOICES)
    event_id = models.UUIDField(default=uuid.uuid4)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    system_notification = models.ForeignKey(
        SystemNotification, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications"
    )
    email_state = models.CharField(max_length=10, choices=EmailState.choices, default=EmailState.NOT_WANTED)
    email_error = models.TextField(blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A fan-out batch that runs twice notifies each user once.
            models.UniqueConstraint(fields=["user", "event_id"], name="notification_one_per_user_and_event")
        ]

    def __str__(self) -> str:
        return f"{self.title} -> {self.user}"


class NotificationPreference(models.Model):
    """Whether a user wants one event by email; without a row the event's default applies."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    event = models.CharField(max_length=40, choices=events.EMAIL_EVENT_CHOICES)
    email = models.BooleanField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "event"], name="notification_preference_one_per_event")]

    def __str__(self) -> str:
        return f"{self.user} {self.event}: {'email' if self.email else 'no email'}"
