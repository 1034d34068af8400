"""Workers keep their database connections between tasks; a task run inline leaves its caller's alone."""

from django.db import connection, transaction

from jobs.models import TaskRecord
from jobs.tasks import cleanup_task_records


def test_a_task_run_inline_inside_a_transaction_keeps_the_callers_connection_and_transaction(db):
    with transaction.atomic():
        record = TaskRecord.objects.create(name="inline-check", queue="default")
        raw = connection.connection

        cleanup_task_records.apply()

        assert connection.connection is raw and connection.in_atomic_block
        assert TaskRecord.objects.filter(pk=record.pk).exists()  # the caller's uncommitted row is still there
