"""The default tiers free, pro and premium (never overwriting an operator's edits)."""

from django.db import migrations


def create_default_tiers(apps, schema_editor):
    from users.services import DEFAULT_TIERS

    Tier = apps.get_model("users", "Tier")
    for values in DEFAULT_TIERS:
        Tier.objects.get_or_create(slug=values["slug"], defaults=values)


class Migration(migrations.Migration):
    dependencies = [("users", "0001_initial")]
    operations = [migrations.RunPython(create_default_tiers, migrations.RunPython.noop)]
