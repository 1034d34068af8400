"""Writes for users, tiers and API keys."""

import hashlib
import secrets
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from users.exceptions import DailyLimitExceeded
from users.models import ApiKey, Tier, UsageDaily, User

KEY_PREFIX = "ak_"

# The tiers every installation starts with (a data migration writes them; tests call it too).
DEFAULT_TIERS = [
    {"slug": "free", "name": "Free", "daily_request_limit": 100, "max_prompt_length": 4_000,
     "queue_priority": "low", "max_in_flight": 2, "max_document_bytes": 1_000_000,
     "auto_assign_min_requests": 0},
    {"slug": "pro", "name": "Pro", "daily_request_limit": 1_000, "max_prompt_length": 16_000,
     "queue_priority": "normal", "max_in_flight": 10, "fair_share_weight": 2, "max_document_bytes": 10_000_000,
     "auto_assign_min_requests": 500},
    {"slug": "premium", "name": "Premium", "daily_request_limit": 10_000, "max_prompt_length": 64_000,
     "queue_priority": "high", "max_in_flight": 25, "fair_share_weight": 4, "max_document_bytes": 50_000_000,
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


def api_key_touch(api_key: ApiKey) -> bool:
    """Record that a key was used (at most once a minute, to keep reads cheap); True if written."""
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
        return True
    return False


# Daily limits and usage ---------------------------------------------------------------------


def usage_day() -> date:
    """Today in the configured time zone: the day limits and statistics count in."""
    return timezone.localdate()


def daily_reset_at() -> datetime:
    """When today's counters reset: the next midnight in the configured time zone."""
    tomorrow = usage_day() + timedelta(days=1)
    return timezone.make_aware(datetime.combine(tomorrow, time.min))


def daily_quota_ctes(*, user: User) -> tuple[str, dict[str, Any]]:
    """The CTEs that count one request against `user`'s limit for today, and their parameters.

    `admitted` updates the user's row only if today's limit allows one more (RETURNING id and
    requests_today); `counted`, only when it did, adds the request to the day's usage row
    (RETURNING user_id). A statement that writes the request itself reads `counted`: no row, no
    request (`daily_limit_exceeded`). Concurrent requests queue on the user's row lock and each
    re-checks the limit, so with one request left exactly one of them is admitted. The locks are
    taken in the order the worker's finishing transaction takes them: the user's row, then the
    usage row.
    """
    tier = user_tier(user)
    sql = f"""
        admitted AS (
            UPDATE users_user
               SET requests_today = CASE WHEN usage_date = %(q_today)s THEN requests_today + 1 ELSE 1 END,
                   tokens_today = CASE WHEN usage_date = %(q_today)s THEN tokens_today ELSE 0 END,
                   usage_date = %(q_today)s
             WHERE id = %(q_user)s AND (usage_date IS DISTINCT FROM %(q_today)s OR requests_today < %(q_limit)s)
         RETURNING id, requests_today
        ), counted AS (
            {_USAGE_ADD_SQL.format(source="SELECT id, %(q_today)s::date, 1, 0, 0, 0, 0, now() FROM admitted")}
            RETURNING user_id
        )"""
    return sql, {"q_today": usage_day(), "q_user": user.pk, "q_limit": tier.daily_request_limit}


def daily_limit_exceeded(*, user: User) -> DailyLimitExceeded:
    """The 429 for a request `daily_quota_ctes` did not admit."""
    limit = user_tier(user).daily_request_limit
    reset_at = daily_reset_at()
    wait = max(1, int((reset_at - timezone.now()).total_seconds()))
    return DailyLimitExceeded(limit=limit, used=limit, reset_at=reset_at, wait_seconds=wait)


def daily_quota_consume(*, user: User) -> int:
    """Count one accepted request against today's limit, atomically; 429 when none is left.

    One statement (`daily_quota_ctes`), called inside the transaction that records the request,
    so a request that is not recorded is not counted.
    """
    ctes, params = daily_quota_ctes(user=user)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {ctes} SELECT admitted.requests_today FROM admitted, counted", params)
        row = cursor.fetchone()
    if row is None:
        raise daily_limit_exceeded(user=user)
    return row[0]


def usage_record_finished(*, user_id: int, day: date, completed: bool, tokens: int = 0, duration_ms: int = 0) -> None:
    """Count a request's outcome; call it in the transaction that makes the request final.

    Locks are taken in the same order as at admission (the user's row, then the day's usage
    row), so a request finishing while the same user submits another cannot deadlock.
    """
    if tokens:
        User.objects.filter(pk=user_id, usage_date=day).update(tokens_today=F("tokens_today") + tokens)
    _usage_add(
        user_id=user_id,
        day=day,
        completed=int(completed),
        failed=int(not completed),
        tokens=tokens,
        duration_ms=duration_ms if completed else 0,
    )


# Adds to one user's numbers of one day; `source` yields the row (a VALUES list or a SELECT).
_USAGE_ADD_SQL = """
    INSERT INTO users_usagedaily (user_id, date, requests, completed, failed, tokens, total_duration_ms, updated_at)
    {source}
    ON CONFLICT (user_id, date) DO UPDATE SET
        requests = users_usagedaily.requests + EXCLUDED.requests,
        completed = users_usagedaily.completed + EXCLUDED.completed,
        failed = users_usagedaily.failed + EXCLUDED.failed,
        tokens = users_usagedaily.tokens + EXCLUDED.tokens,
        total_duration_ms = users_usagedaily.total_duration_ms + EXCLUDED.total_duration_ms,
        updated_at = now()
"""


def _usage_add(
    *,
    user_id: int,
    day: date,
    requests: int = 0,
    completed: int = 0,
    failed: int = 0,
    tokens: int = 0,
    duration_ms: int = 0,
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _USAGE_ADD_SQL.format(source="VALUES (%s, %s, %s, %s, %s, %s, %s, now())"),
            [user_id, day, requests, completed, failed, tokens, duration_ms],
        )


def usage_daily_store(*, user_id: int, day: date, **numbers: int) -> None:
    """Overwrite one user's numbers for one day (recomputed from the requests themselves)."""
    UsageDaily.objects.update_or_create(user_id=user_id, date=day, defaults=numbers)


def user_daily_limit_reset(*, user_id: int) -> int:
    """Give one user today's full limit again."""
    return User.objects.filter(pk=user_id).update(requests_today=0, tokens_today=0)


def daily_limits_reset_all() -> int:
    """Zero every user's daily counters in one set-based UPDATE (rows already zero are skipped)."""
    return User.objects.filter(Q(requests_today__gt=0) | Q(tokens_today__gt=0)).update(requests_today=0, tokens_today=0)


# Automatic tiers ----------------------------------------------------------------------------

TIER_WINDOW_DAYS = 30

# Users who are not pinned and sit in an automatic tier (one with a threshold) move to the
# automatic tier with the highest threshold their requests over the window reach.
_RECALCULATE_TIERS_SQL = """
WITH usage AS (
    SELECT user_id, SUM(requests) AS requests
      FROM users_usagedaily
     WHERE date >= %(since)s {usage_filter}
  GROUP BY user_id
), target AS (
    SELECT u.id,
           (SELECT t.id FROM users_tier t
             WHERE t.auto_assign_min_requests IS NOT NULL
               AND t.auto_assign_min_requests <= COALESCE(usage.requests, 0)
          ORDER BY t.auto_assign_min_requests DESC, t.id
             LIMIT 1) AS tier_id
      FROM users_user u
      JOIN users_tier current_tier ON current_tier.id = u.tier_id
 LEFT JOIN usage ON usage.user_id = u.id
     WHERE NOT u.tier_pinned AND current_tier.auto_assign_min_requests IS NOT NULL {user_filter}
)
UPDATE users_user u SET tier_id = target.tier_id
  FROM target
 WHERE u.id = target.id AND target.tier_id IS NOT NULL AND u.tier_id <> target.tier_id
"""


def tiers_recalculate(*, user_id: int | None = None) -> int:
    """Place users in their automatic tier, one user or all of them in one statement."""
    since = usage_day() - timedelta(days=TIER_WINDOW_DAYS - 1)
    one_user = user_id is not None
    sql = _RECALCULATE_TIERS_SQL.format(
        usage_filter="AND user_id = %(user_id)s" if one_user else "",
        user_filter="AND u.id = %(user_id)s" if one_user else "",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"since": since, "user_id": user_id})
        return cursor.rowcount
