"""Documents end to end: uploaded, embedded by a real worker, searched, deleted, scoped to their owner."""

import uuid

from conftest import wait_task_final, wait_until
from jobs.models import TaskRecord
from sync.models import Document, DocumentChunk
from sync.tests.helpers import make_pdf, wait_document

# Each paragraph is long enough to be a chunk of its own (DOCUMENT_CHUNK_CHARS is 800).
VOLCANOES = (
    "Volcanoes form where magma rises through the crust. When pressure builds the volcano erupts and lava "
    "flows down its slopes, cooling into basalt. Ash clouds from an eruption can ground aircraft for days. "
) * 3
BREAD = (
    "Bread dough needs flour, water, salt and yeast. Kneading develops gluten, proofing lets the yeast "
    "produce gas, and baking sets the crumb while the crust browns in the hot oven. "
) * 3
TIDES = (
    "Tides rise and fall twice a day because the moon pulls the oceans toward it. Spring tides come with "
    "full and new moons, neap tides with the quarters, and harbours publish tide tables for sailors. "
) * 3


def upload(client, title: str, text: str, expect: int = 202) -> dict:
    response = client.post("/api/v1/documents/", {"title": title, "text": text}, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def search(client, q: str, **params) -> dict:
    response = client.get("/api/v1/documents/search/", {"q": q, **params})
    assert response.status_code == 200, response.content
    return response.json()


def test_uploaded_text_is_embedded_and_search_finds_the_right_chunk_first(
    worker, worker_provider, make_user, client_for
):
    owner = make_user()
    client = client_for(owner)
    text = f"{BREAD}\n\n{VOLCANOES}\n\n{TIDES}"

    accepted = upload(client, "Three topics", text)

    assert set(accepted) >= {"id", "status", "task_id", "status_url"}
    assert accepted["status"] == "PENDING" and accepted["duplicate"] is False
    done = wait_document(client, accepted["id"])
    assert done["status"] == "EMBEDDED", done
    assert done["chunk_count"] == 3
    assert done["embedded_at"] and done["embedding_model"] == "text-embedding-3-small"
    chunks = DocumentChunk.objects.filter(document_id=accepted["id"])
    assert {(c.embedding_model, c.embedding_dimensions) for c in chunks} == {("text-embedding-3-small", 1536)}
    assert wait_task_final(client, accepted["task_id"])["state"] == "SUCCESS"

    results = search(client, "lava magma eruption volcano", top_k=2)["results"]

    assert len(results) == 2
    assert results[0]["document_id"] == accepted["id"]
    assert results[0]["index"] == 1 and "magma" in results[0]["text"]
    assert results[0]["score"] > results[1]["score"]
    assert search(client, "moon tides harbours")["results"][0]["index"] == 2


def test_another_users_search_never_returns_my_chunks(worker, worker_provider, make_user, client_for):
    owner, other, staff = make_user(), make_user(), make_user(staff=True)
    mine = upload(client_for(owner), "Mine", VOLCANOES)
    theirs = upload(client_for(other), "Theirs", BREAD)
    wait_document(client_for(owner), mine["id"])
    wait_document(client_for(other), theirs["id"])

    other_results = search(client_for(other), "lava magma eruption volcano", top_k=50)["results"]
    staff_results = search(client_for(staff), "lava magma eruption volcano")["results"]

    assert other_results and {hit["document_id"] for hit in other_results} == {theirs["id"]}
    assert staff_results == []  # search is over one's own chunks, staff included


def test_deleting_a_document_removes_every_chunk_in_the_background(worker, worker_provider, make_user, client_for):
    client = client_for(make_user())
    accepted = upload(client, "Doomed", f"{VOLCANOES}\n\n{BREAD}")
    wait_document(client, accepted["id"])
    assert DocumentChunk.objects.filter(document_id=accepted["id"]).count() == 2

    response = client.delete(f"/api/v1/documents/{accepted['id']}/")

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "DELETING" and body["task_id"] != accepted["task_id"]
    wait_until(lambda: not Document.objects.filter(pk=accepted["id"]).exists(), what="the document to be deleted")
    assert not DocumentChunk.objects.filter(document_id=accepted["id"]).exists()
    assert client.get(f"/api/v1/documents/{accepted['id']}/").status_code == 404
    assert search(client, "lava magma eruption")["results"] == []
    record = TaskRecord.objects.get(pk=body["task_id"])
    assert record.name == "sync.delete_document_embeddings" and record.queue == "sync"
    wait_until(lambda: TaskRecord.objects.get(pk=body["task_id"]).state == "SUCCESS", what="the delete task")


def test_identical_content_is_not_embedded_twice(worker, worker_provider, make_user, client_for, openai_server):
    owner, other = make_user(), make_user()
    client = client_for(owner)
    marker = uuid.uuid4().hex
    text = f"{TIDES} {marker}"
    first = upload(client, "Tides", text)
    wait_document(client, first["id"])

    again = upload(client, "Tides, again", f"\n{text}\n", expect=200)

    assert again["id"] == first["id"] and again["duplicate"] is True
    assert again["task_id"] == first["task_id"] and again["status"] == "EMBEDDED"
    assert Document.objects.filter(owner=owner).count() == 1
    assert TaskRecord.objects.filter(owner=owner).count() == 1
    assert openai_server.calls_for(marker) == 1  # one chunk, embedded once
    someone_else = upload(client_for(other), "Tides", text)  # the same text is another user's own document
    assert someone_else["id"] != first["id"] and someone_else["duplicate"] is False
    wait_document(client_for(other), someone_else["id"])


def test_a_failed_document_uploaded_again_is_embedded_again(worker, make_user, client_for):
    client = client_for(make_user())
    text = f"#status=400 refused by the provider {uuid.uuid4().hex}"
    first = upload(client, "Refused", text)
    failed = wait_document(client, first["id"])
    assert failed["status"] == "FAILED"
    assert "The provider answered HTTP 400: Forced status 400" in failed["error"]
    assert wait_task_final(client, first["task_id"])["state"] == "FAILURE"

    again = upload(client, "Refused", text, expect=202)

    assert again["id"] == first["id"] and again["duplicate"] is True
    assert again["task_id"] != first["task_id"]
    wait_until(lambda: TaskRecord.objects.get(pk=again["task_id"]).is_final, what="the second try")
    assert Document.objects.get(pk=first["id"]).status == "FAILED"


def test_a_batch_answers_one_task_per_document_and_a_group_id(worker, worker_provider, make_user, client_for):
    client = client_for(make_user())
    marker = uuid.uuid4().hex[:8]
    items = [{"title": f"part {n}", "text": f"{topic} {marker}"} for n, topic in enumerate([VOLCANOES, BREAD, TIDES])]

    response = client.post("/api/v1/documents/batch/", {"documents": items}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["group_id"] and body["id"] == body["group_id"]
    assert len(body["task_ids"]) == 3 == len(set(body["task_ids"]))
    assert [d["task_id"] for d in body["documents"]] == body["task_ids"]
    for document in body["documents"]:
        assert wait_document(client, document["id"])["status"] == "EMBEDDED"
    listed = client.get(body["status_url"]).json()
    assert listed["count"] == 3
    assert {d["group_id"] for d in listed["results"]} == {body["group_id"]}
    assert {TaskRecord.objects.get(pk=t).name for t in body["task_ids"]} == {"sync.sync_embeddings"}


def test_a_pdf_upload_is_extracted_embedded_and_found(worker, worker_provider, make_user, client_for):
    client = client_for(make_user())
    pdf = make_pdf(["Glaciers carve valleys as the ice moves downhill.", "Moraines mark where glaciers stopped."])

    response = client.post("/api/v1/documents/", {"file": _file("glaciers.pdf", pdf, "application/pdf")})

    assert response.status_code == 202, response.content
    done = wait_document(client, response.json()["id"])
    assert done["status"] == "EMBEDDED" and done["source"] == "file"
    assert (done["title"], done["file_name"], done["content_type"]) == (
        "glaciers.pdf",
        "glaciers.pdf",
        "application/pdf",
    )
    assert search(client, "glaciers carve valleys")["results"][0]["document_id"] == done["id"]


def _file(name: str, data: bytes, content_type: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type=content_type)


def test_another_users_document_answers_404_on_detail_and_delete(db, make_user, client_for):
    owner, other = make_user(), make_user()
    document = Document.objects.create(owner=owner, title="mine", text="secret", checksum="x")

    other_client = client_for(other)

    assert other_client.get(f"/api/v1/documents/{document.pk}/").status_code == 404
    assert other_client.delete(f"/api/v1/documents/{document.pk}/").status_code == 404
    assert other_client.get("/api/v1/documents/").json()["count"] == 0
    assert Document.objects.get(pk=document.pk).status == "PENDING"
    assert client_for(owner).get(f"/api/v1/documents/{document.pk}/").status_code == 200
    assert client_for(make_user(staff=True)).get("/api/v1/documents/").json()["count"] == 1


def test_search_needs_a_query_and_caps_top_k(db, make_user, client_for, settings):
    settings.AI_PROVIDER = "offline"
    client = client_for(make_user())

    assert client.get("/api/v1/documents/search/").status_code == 400
    assert "q" in client.get("/api/v1/documents/search/", {"q": "  "}).json()
    assert client.get("/api/v1/documents/search/", {"q": "x", "top_k": "0"}).status_code == 400
    assert client.get("/api/v1/documents/search/", {"q": "x", "top_k": "many"}).status_code == 400
    assert search(client, "x", top_k=10_000)["top_k"] == settings.DOCUMENT_SEARCH_MAX_TOP_K
    assert search(client, "x")["top_k"] == settings.DOCUMENT_SEARCH_DEFAULT_TOP_K


def test_the_schema_describes_the_document_endpoints(db, client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    for path in ("/api/v1/documents/", "/api/v1/documents/batch/", "/api/v1/documents/search/", "/api/v1/sync/full/"):
        assert path in schema["paths"], path
    assert "not embedded twice" in schema["paths"]["/api/v1/documents/"]["post"]["description"]
