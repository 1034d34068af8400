from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built without locking writes: the table may be large by the time this runs.
    atomic = False

    dependencies = [
        ("jobs", "0002_fair_share"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="taskrecord",
            index=models.Index(fields=["state", "finished_at"], name="jobs_state_finished_idx"),
        ),
    ]
