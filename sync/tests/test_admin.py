"""Operators see documents with status and chunk counts, re-sync them, and watch the sync queue."""

import pytest
from django.contrib import admin

from conftest import wait_until
from jobs.models import TaskRecord
from sync.models import Document, DocumentBatch, SyncQueueItem


@pytest.fixture
def operator_client(client, make_user):
    operator = make_user(staff=True)
    client.force_login(operator)
    return client, operator


def test_every_sync_admin_page_renders(operator_client):
    client, operator = operator_client
    batch = DocumentBatch.objects.create(owner=operator)
    document = Document.objects.create(owner=operator, batch=batch, title="doc", text="some text", checksum="c")
    SyncQueueItem.objects.create(document=document)

    for model in admin.site._registry:
        if model._meta.app_label != "sync":
            continue
        base = f"/admin/sync/{model._meta.model_name}/"
        assert client.get(base).status_code == 200, base
        assert client.get(base + "?q=x").status_code == 200, base
        instance = model.objects.first()
        assert client.get(f"{base}{instance.pk}/change/").status_code == 200, base
    assert b"some text" in client.get(f"/admin/sync/document/{document.pk}/change/").content


def test_the_resync_action_embeds_the_chosen_documents_again(worker, operator_client):
    client, operator = operator_client
    document = Document.objects.create(owner=operator, title="doc", text="re-sync me please", checksum="c")

    response = client.post(
        "/admin/sync/document/", {"action": "resync_now", "_selected_action": [document.pk]}, follow=True
    )

    assert response.status_code == 200
    record = TaskRecord.objects.get(name="sync.process_documents_batch")
    assert record.args == [[document.pk]] and record.owner == operator
    wait_until(lambda: Document.objects.get(pk=document.pk).status == "EMBEDDED", what="the re-sync")
    wait_until(lambda: TaskRecord.objects.get(pk=record.pk).state == "SUCCESS", what="the task record")


def test_the_queue_actions_enqueue_and_drain(operator_client):
    client, operator = operator_client
    document = Document.objects.create(owner=operator, title="doc", text="queue me", checksum="c")

    client.post("/admin/sync/document/", {"action": "add_to_sync_queue", "_selected_action": [document.pk]})
    assert SyncQueueItem.objects.filter(document=document).count() == 1
    item = SyncQueueItem.objects.get()
    client.post("/admin/sync/syncqueueitem/", {"action": "process_queue_now", "_selected_action": [item.pk]})

    assert TaskRecord.objects.filter(name="sync.process_sync_queue", owner=operator).count() == 1
