from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built without locking writes: every owner who ever dispatched with a cap has a lane.
    atomic = False

    dependencies = [
        ("jobs", "0004_task_record_request_id"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="fairlane",
            index=models.Index(
                condition=models.Q(("waiting__gt", 0)),
                fields=["queue", "pass_value"],
                name="jobs_fair_lane_waiting_idx",
            ),
        ),
    ]
