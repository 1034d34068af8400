"""The default tiers free, pro and premium (never overwriting an operator's edits)."""

from django.db import migrations

# A frozen copy: a migration must not change when the code it was written with changes.
DEFAULT_TIERS = [
    {"slug": "free", "name": "Free", "daily_request_limit": 100, "max_prompt_length": 4_000,
     "queue_priority": "low", "max_in_flight": 2, "max_document_bytes": 1_000_000,
     "auto_assign_min_requests": 0},
    {"slug": "pro", "name": "Pro", "daily_request_limit": 1_000, "max_prompt_length": 16_000,
     "queue_priority": "normal", "max_in_flight": 10, "max_document_bytes": 10_000_000,
     "auto_assign_min_requests": 500},
    {"slug": "premium", "name": "Premium", "daily_request_limit": 10_000, "max_prompt_length": 64_000,
     "queue_priority": "high", "max_in_flight": 25, "max_document_bytes": 50_000_000,
     "auto_assign_min_requests": None},
]  # fmt: skip


def create_default_tiers(apps, schema_editor):
    Tier = apps.get_model("users", "Tier")
    for values in DEFAULT_TIERS:
        Tier.objects.get_or_create(slug=values["slug"], defaults=values)


class Migration(migrations.Migration):
    dependencies = [("users", "0001_initial")]
    operations = [migrations.RunPython(create_default_tiers, migrations.RunPython.noop)]
