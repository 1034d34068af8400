"""Users, the tiers that set their limits, and the API keys they call with."""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class Tier(models.Model):
    """A service level: what a user may send and how soon it runs."""

    class Priority(models.TextChoices):
        HIGH = "high", "High"
        NORMAL = "normal", "Normal"
        LOW = "low", "Low"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    daily_request_limit = models.PositiveIntegerField(default=100)
    max_prompt_length = models.PositiveIntegerField(default=4000, help_text="Characters.")
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Model names this tier may use; empty allows every configured model."
    )
    queue_priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    max_in_flight = models.PositiveIntegerField(
        default=2, help_text="How many of one user's requests may run at once; the rest wait."
    )
    fair_share_weight = models.PositiveSmallIntegerField(
        default=1, help_text="Turns per round when users of different tiers wait in the same queue."
    )
    max_document_bytes = models.PositiveIntegerField(default=1_000_000, help_text="Largest document upload.")
    auto_assign_min_requests = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Users with at least this many requests over the last 30 days are placed in this tier "
        "(the highest tier whose threshold they reach). Empty: never assigned automatically.",
    )

    class Meta:
        ordering = ["daily_request_limit", "slug"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person or system that calls the API; every user belongs to a tier."""

    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="users", null=True, blank=True)
    tier_pinned = models.BooleanField(default=False, help_text="An operator chose this tier; never recalculate it.")
    # Today's counters. They belong to `usage_date`: on a new day they count from zero even if
    # the nightly reset has not run yet; the reset zeroes them all in one UPDATE.
    requests_today = models.PositiveIntegerField(default=0)
    tokens_today = models.PositiveBigIntegerField(default=0)
    usage_date = models.DateField(null=True, blank=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        # Today's usage by tier (the dashboard) reads only the users active today.
        indexes = [models.Index(fields=["usage_date", "tier"], name="users_usage_date_tier_idx")]


class ApiKey(models.Model):
    """An API key; only its SHA-256 is stored, the key itself is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=12, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class UsageDaily(models.Model):
    """One user's numbers for one day (in TIME_ZONE): what /me/usage/ and statistics report."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_days")
    date = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)
    total_duration_ms = models.PositiveBigIntegerField(default=0, help_text="Sum over completed requests.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date"]
        constraints = [models.UniqueConstraint(fields=["user", "date"], name="usage_daily_one_row_per_user_day")]
        indexes = [models.Index(fields=["date"])]

    def __str__(self) -> str:
        return f"{self.user} {self.date}"

    @property
    def mean_latency_ms(self) -> int | None:
        return self.total_duration_ms // self.completed if self.completed else None
