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

    class Meta:
        ordering = ["daily_request_limit", "slug"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person or system that calls the API; every user belongs to a tier."""

    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="users", null=True, blank=True)


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
