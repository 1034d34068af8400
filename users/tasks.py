"""User jobs: daily limits and automatic tiers."""

from celery import shared_task

from jobs import queues
from users.services import daily_limits_reset_all, tiers_recalculate, user_daily_limit_reset


@shared_task(name="users.reset_user_daily_limit", queue=queues.MAINTENANCE)
def reset_user_daily_limit(user_id: int) -> int:
    """Give one user today's full limit again."""
    return user_daily_limit_reset(user_id=user_id)


@shared_task(name="users.reset_all_daily_limits", queue=queues.MAINTENANCE)
def reset_all_daily_limits() -> int:
    """Zero every user's daily counters (daily at midnight, one UPDATE)."""
    return daily_limits_reset_all()


@shared_task(name="users.calculate_user_tier", queue=queues.MAINTENANCE)
def calculate_user_tier(user_id: int) -> int:
    """Place one user in their automatic tier."""
    return tiers_recalculate(user_id=user_id)


@shared_task(name="users.calculate_all_tiers", queue=queues.MAINTENANCE)
def calculate_all_tiers() -> int:
    """Place every user in their automatic tier (daily, one statement)."""
    return tiers_recalculate()
