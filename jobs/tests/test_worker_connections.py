"""Workers keep their database connections between tasks; a task run inline leaves its caller's alone."""

from django.db import connection, transaction

from jobs.tasks import cleanup_task_records
from users.models import Tier


def test_a_task_run_inline_inside_a_transaction_keeps_the_callers_connection_and_transaction(db):
    with transaction.atomic():
        tier = Tier.objects.create(slug="inline-check", name="Inline check", daily_request_limit=1)
        raw = connection.connection

        cleanup_task_records.apply()

        assert connection.connection is raw and connection.in_atomic_block
        assert Tier.objects.filter(pk=tier.pk).exists()  # the caller's uncommitted row is still there
