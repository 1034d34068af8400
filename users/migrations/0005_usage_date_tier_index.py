from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built without locking writes: the users table may be large by the time this runs.
    atomic = False

    dependencies = [
        ("users", "0004_fair_share_weight"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="user",
            index=models.Index(fields=["usage_date", "tier"], name="users_usage_date_tier_idx"),
        ),
    ]
