"""Full re-sync: staff only, in batches with progress; a failing document does not stop it."""

import uuid

from conftest import wait_until
from jobs.models import TaskRecord
from sync.models import Document


def test_full_sync_reports_progress_and_a_failing_document_does_not_stop_the_batch(worker, make_user, client_for):
    owner, staff = make_user(), make_user(staff=True)
    texts = ["first fine document", "#status=400 the provider refuses this one", "third fine document"]
    documents = [
        Document.objects.create(owner=owner, title=f"doc {n}", text=f"{text} {uuid.uuid4().hex}", checksum=str(n))
        for n, text in enumerate(texts)
    ]

    response = client_for(staff).post("/api/v1/sync/full/", {"batch_size": 2}, format="json")

    assert response.status_code == 202, response.content
    accepted = response.json()
    assert set(accepted) >= {"id", "status", "task_id", "status_url"} and accepted["batch_size"] == 2
    record = wait_until(
        lambda: (r := TaskRecord.objects.get(pk=accepted["task_id"])).is_final and r, timeout=30, what="full sync"
    )
    assert record.state == "SUCCESS", record.error
    assert record.result == {"processed": 3, "failed": 1}
    assert record.progress_percent == 100
    assert record.progress_message == "3 of 3 documents, 1 failed"  # written by the task, after its last batch
    statuses = {d.pk: (d.status, d.error) for d in Document.objects.all()}
    assert statuses[documents[0].pk] == ("EMBEDDED", "")
    assert statuses[documents[2].pk] == ("EMBEDDED", "")
    assert statuses[documents[1].pk][0] == "FAILED"
    assert "The provider answered HTTP 400: Forced status 400" in statuses[documents[1].pk][1]
    task = client_for(staff).get(accepted["status_url"]).json()
    assert task["name"] == "sync.trigger_full_sync" and task["progress"]["percent"] == 100


def test_full_sync_is_for_staff_only(db, make_user, client_for):
    response = client_for(make_user()).post("/api/v1/sync/full/", {}, format="json")

    assert response.status_code == 403
    assert not TaskRecord.objects.exists()
