"""Automatic tiers: usage over 30 days places users; pinned users and manual tiers stay."""

from datetime import timedelta

from django.utils import timezone

from users.models import Tier, UsageDaily, User
from users.services import tiers_recalculate


def used(user: User, requests: int, days_ago: int = 0) -> None:
    UsageDaily.objects.create(user=user, date=timezone.localdate() - timedelta(days=days_ago), requests=requests)


def tier_of(user: User) -> str:
    return User.objects.get(pk=user.pk).tier.slug


def test_busy_free_users_move_up_and_quiet_pro_users_move_down(db, make_user):
    busy, quiet, old_usage = make_user(), make_user(tier="pro"), make_user()
    used(busy, 300)
    used(busy, 250, days_ago=10)
    used(quiet, 10)
    used(old_usage, 900, days_ago=45)  # outside the 30-day window

    moved = tiers_recalculate()

    assert moved == 2
    assert tier_of(busy) == "pro"
    assert tier_of(quiet) == "free"
    assert tier_of(old_usage) == "free"


def test_pinned_users_and_manual_tiers_are_never_moved(db, make_user):
    pinned, premium = make_user(), make_user(tier="premium")
    User.objects.filter(pk=pinned.pk).update(tier_pinned=True)
    used(pinned, 1000)
    used(premium, 0)

    assert tiers_recalculate() == 0
    assert tier_of(pinned) == "free"
    assert tier_of(premium) == "premium"


def test_one_users_recalculation_touches_only_that_user(db, make_user):
    first, second = make_user(), make_user()
    used(first, 600)
    used(second, 600)

    assert tiers_recalculate(user_id=first.pk) == 1
    assert tier_of(first) == "pro" and tier_of(second) == "free"
    assert Tier.objects.get(slug="pro").users.count() == 1
