"""Reads for users: today's quota and daily usage."""

from datetime import timedelta
from typing import Any

from django.db.models import Count, F, Q, Sum

from users.key_cache import USER_COUNTERS
from users.models import Tier, UsageDaily, User
from users.services import daily_reset_at, usage_day, user_tier


def user_quota(*, user: User) -> dict[str, Any]:
    """Tier, limit, used today, remaining and when it resets."""
    tier = user_tier(user)
    today = usage_day()
    counters = user.get_deferred_fields() & set(USER_COUNTERS)  # a kept API key's user: read them now
    if counters:
        user.refresh_from_db(fields=sorted(counters))
    used = user.requests_today if user.usage_date == today else 0
    tokens = user.tokens_today if user.usage_date == today else 0
    return {
        "username": user.username,
        "tier": {"slug": tier.slug, "name": tier.name, "queue_priority": tier.queue_priority},
        "daily_request_limit": tier.daily_request_limit,
        "used_today": used,
        "remaining_today": max(0, tier.daily_request_limit - used),
        "tokens_today": tokens,
        "max_prompt_length": tier.max_prompt_length,
        "reset_at": daily_reset_at(),
    }


def usage_days(*, user: User, days: int) -> list[dict[str, Any]]:
    """The last `days` days, newest first, with zeros for days without requests."""
    today = usage_day()
    since = today - timedelta(days=days - 1)
    rows = {row.date: row for row in UsageDaily.objects.filter(user=user, date__gte=since)}
    result = []
    for offset in range(days):
        day = today - timedelta(days=offset)
        row = rows.get(day)
        result.append(
            {
                "date": day,
                "requests": row.requests if row else 0,
                "completed": row.completed if row else 0,
                "failed": row.failed if row else 0,
                "tokens": row.tokens if row else 0,
                "mean_latency_ms": row.mean_latency_ms if row else None,
            }
        )
    return result


def usage_by_tier_today() -> dict[str, Any]:
    """Today's requests, tokens and users at their limit per tier, as a dashboard table.

    Reads only today's active users, through the (usage_date, tier) index.
    """
    today = usage_day()
    at_limit = Q(requests_today__gte=F("tier__daily_request_limit"))
    numbers = {
        row["tier_id"]: row
        for row in User.objects.filter(usage_date=today)
        .values("tier_id")
        .annotate(users=Count("*"), requests=Sum("requests_today"), tokens=Sum("tokens_today"))
        .annotate(at_limit=Count("id", filter=at_limit))
        .order_by()
    }
    rows = []
    for tier in Tier.objects.order_by("daily_request_limit", "slug"):
        row = numbers.get(tier.pk, {})
        rows.append(
            [
                tier.name,
                tier.daily_request_limit,
                row.get("users", 0),
                row.get("requests") or 0,
                row.get("tokens") or 0,
                row.get("at_limit", 0),
            ]
        )
    return {
        "title": f"Usage today ({today.isoformat()}) by tier",
        "columns": ["Tier", "Daily limit", "Active users", "Requests", "Tokens", "Users at their limit"],
        "rows": rows,
    }
