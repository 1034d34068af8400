"""django-celery-results' rows, written by our backend with one upsert per state."""

from types import SimpleNamespace

from celery import current_app
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_results.models import TaskResult

from conftest import wait_until
from jobs import queues
from jobs.services import task_dispatch


def _request(task_id: str) -> SimpleNamespace:
    return SimpleNamespace(
        id=task_id, task="jobs.cleanup_task_records", argsrepr="[1]", kwargsrepr="{'a': 2}",
        hostname="worker@test", periodic_task_name=None, children=[], meta={},
    )  # fmt: skip


def test_each_state_is_one_statement_and_later_states_keep_when_the_task_started(db):
    backend, task_id = current_app.backend, "5b8f0c1e-0000-4000-8000-000000000001"

    with CaptureQueriesContext(connection) as started:
        backend.store_result(task_id, {"pid": 1}, "STARTED", request=_request(task_id))
    first = TaskResult.objects.get(task_id=task_id)
    with CaptureQueriesContext(connection) as succeeded:
        backend.store_result(task_id, {"deleted": 3}, "SUCCESS", request=_request(task_id))
    done = TaskResult.objects.get(task_id=task_id)

    assert len(started) == 1 and len(succeeded) == 1
    assert first.status == "STARTED" and first.date_started is not None
    assert done.status == "SUCCESS" and backend.decode_content(done, done.result) == {"deleted": 3}
    assert done.date_started == first.date_started and done.date_created == first.date_created
    assert done.date_done >= first.date_done
    assert (done.task_name, done.worker) == ("jobs.cleanup_task_records", "worker@test")
    assert backend.get_task_meta(task_id)["status"] == "SUCCESS"  # read back through Celery
    assert TaskResult.objects.filter(task_id=task_id).count() == 1


def test_a_failure_keeps_its_traceback_and_the_exception_celery_reads_back(db):
    backend, task_id = current_app.backend, "5b8f0c1e-0000-4000-8000-000000000002"

    backend.store_result(task_id, ValueError("bad input"), "FAILURE", traceback="Traceback: here", request=None)

    row = TaskResult.objects.get(task_id=task_id)
    assert row.status == "FAILURE" and row.traceback == "Traceback: here" and row.date_started is None
    meta = backend.get_task_meta(task_id)
    assert isinstance(meta["result"], ValueError) and str(meta["result"]) == "bad input"


def test_a_real_worker_stores_its_task_started_then_done(worker):
    record = task_dispatch(name="jobs.cleanup_task_records", queue=queues.MAINTENANCE)

    row = wait_until(
        lambda: TaskResult.objects.filter(task_id=str(record.pk), status="SUCCESS").first(), what="the stored result"
    )
    assert row.date_started is not None and row.date_started <= row.date_done
    assert row.task_name == "jobs.cleanup_task_records" and row.worker
    assert isinstance(current_app.AsyncResult(str(record.pk)).result, int)
