"""The models and the migrations agree."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models_match_migrations():
    output = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=output, stderr=output)
    except SystemExit:
        pytest.fail(f"models changed without a migration:\n{output.getvalue()}")


@pytest.mark.django_db
def test_default_tiers_exist_after_migrate():
    from users.models import Tier

    assert set(Tier.objects.values_list("slug", flat=True)) >= {"free", "pro", "premium"}
