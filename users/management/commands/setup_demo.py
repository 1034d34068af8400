"""`manage.py setup_demo`: the demo operator and API user that `make run` prints."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from users.models import ApiKey, User
from users.services import api_key_create, tiers_default_ensure, user_create

DEMO_KEY_NAME = "make-run demo"


class Command(BaseCommand):
    help = "Create (or refresh) the demo operator and demo API user; print their credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--operator-password", default="admin")

    def handle(self, *args: Any, operator_password: str, **_: Any) -> None:
        tiers_default_ensure()
        operator = User.objects.filter(username="admin").first()
        if operator is None:
            operator = user_create(username="admin", tier_slug="premium", is_staff=True, password=operator_password)
        demo = User.objects.filter(username="demo").first() or user_create(username="demo", tier_slug="pro")
        # A key is shown only once, so each run retires the last demo key and prints a new one.
        ApiKey.objects.filter(user=demo, name=DEMO_KEY_NAME, revoked_at__isnull=True).update(revoked_at=timezone.now())
        _, key = api_key_create(user=demo, name=DEMO_KEY_NAME)
        self.stdout.write(f"operator: {operator.username} / {operator_password}\ndemo api key: {key}")
