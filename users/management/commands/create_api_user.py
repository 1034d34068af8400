"""`manage.py create_api_user NAME [--tier SLUG] [--staff]`: a user and their API key."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from users.models import Tier
from users.services import api_key_create, tiers_default_ensure, user_create


class Command(BaseCommand):
    help = "Create an API user and print their API key (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--tier", default=None, help="Tier slug (default: free).")
        parser.add_argument("--staff", action="store_true", help="Make the user staff (admin access, all tasks).")
        parser.add_argument("--password", default=None, help="Also set a password (for the admin).")

    def handle(self, *args: Any, username: str, tier: str | None, staff: bool, password: str | None, **_: Any) -> None:
        tiers_default_ensure()
        if tier and not Tier.objects.filter(slug=tier).exists():
            slugs = ", ".join(Tier.objects.values_list("slug", flat=True))
            raise CommandError(f"No tier {tier!r}; known tiers: {slugs}.")
        try:
            user = user_create(username=username, tier_slug=tier, is_staff=staff, password=password)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        _, key = api_key_create(user=user)
        self.stdout.write(key)
