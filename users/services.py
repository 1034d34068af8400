"""Writes for users, tiers and API keys."""

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from users.models import ApiKey, Tier, User

KEY_PREFIX = "ak_"

# The tiers every installation starts with (a data migration writes them; tests call it too).
DEFAULT_TIERS = [
    {"slug": "free", "name": "Free", "daily_request_limit": 100, "max_prompt_length": 4_000,
     "queue_priority": "low", "max_in_flight": 2, "max_document_bytes": 1_000_000,
     "auto_assign_min_requests": None},
    {"slug": "pro", "name": "Pro", "daily_request_limit": 1_000, "max_prompt_length": 16_000,
     "queue_priority": "normal", "max_in_flight": 10, "max_document_bytes": 10_000_000,
     "auto_assign_min_requests": 500},
    {"slug": "premium", "name": "Premium", "daily_request_limit": 10_000, "max_prompt_length": 64_000,
     "queue_priority": "high", "max_in_flight": 25, "max_document_bytes": 50_000_000,
     "auto_assign_min_requests": None},
]  # fmt: skip
DEFAULT_TIER_SLUG = "free"


def tiers_default_ensure() -> None:
    """Create the default tiers that are missing; never touch ones an operator edited."""
    for values in DEFAULT_TIERS:
        Tier.objects.get_or_create(slug=values["slug"], defaults=values)


def tier_default_get() -> Tier:
    """The tier a new user gets."""
    tiers_default_ensure()
    return Tier.objects.get(slug=DEFAULT_TIER_SLUG)


def api_key_hash(key: str) -> str:
    """The stored form of a key (keys are long and random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, user: User, name: str = "default") -> tuple[ApiKey, str]:
    """Create a key for `user`; returns the row and the key, which is never retrievable again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(user=user, name=name, prefix=key[:10], key_hash=api_key_hash(key))
    return api_key, key


@transaction.atomic
def user_create(
    *, username: str, tier_slug: str | None = None, is_staff: bool = False, password: str | None = None
) -> User:
    """Create a user in the given tier (the default tier if none is named)."""
    tier = Tier.objects.get(slug=tier_slug) if tier_slug else tier_default_get()
    user = User(username=username, tier=tier, is_staff=is_staff, is_superuser=is_staff)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean()
    user.save()
    return user


def user_tier(user: User) -> Tier:
    """The user's tier, giving the default tier to a user created without one (e.g. createsuperuser)."""
    if user.tier_id is None:
        user.tier = tier_default_get()
        User.objects.filter(pk=user.pk, tier__isnull=True).update(tier=user.tier)
    return user.tier


def api_key_touch(api_key: ApiKey) -> None:
    """Record that a key was used (at most once a minute, to keep reads cheap)."""
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
