"""Uploads that cannot become documents are refused with the right code, and nothing is stored."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import TaskRecord
from sync.models import Document, DocumentBatch
from sync.tests.helpers import make_pdf

FREE_TIER_MAX_BYTES = 1_000_000


def post_file(client, name: str, data: bytes, content_type: str, **fields):
    return client.post("/api/v1/documents/", {"file": SimpleUploadedFile(name, data, content_type), **fields})


def assert_nothing_stored():
    assert Document.objects.count() == 0
    assert DocumentBatch.objects.count() == 0
    assert TaskRecord.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "data", "content_type", "status", "message"),
    [
        ("empty.txt", b"", "text/plain", 400, "The file is empty."),
        ("blank.md", b"  \n\n\t\n", "text/markdown", 400, "No text was found in the file."),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png", 415, "Unsupported file type 'image/png'"),
        ("table.csv", b"a,b\n1,2\n", "text/csv", 415, "Unsupported file type 'text/csv'"),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj <</Type /Catalog /Pages 9 0 R>>\ngarbage", "application/pdf", 400, "PDF"),
        ("fake.pdf", b"this is not a pdf at all", "application/pdf", 400, "not a PDF"),
        ("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1"), "text/plain", 400, "not readable as UTF-8 text"),
        ("binary.txt", b"abc\x00\x01\x02def", "application/octet-stream", 400, "NUL bytes"),
        ("empty.html", b"<html><script>var x = 1;</script><p>  </p></html>", "text/html", 400, "No text"),
    ],
)
def test_bad_files_are_refused_and_nothing_is_stored(
    db, make_user, client_for, name, data, content_type, status, message
):
    client = client_for(make_user())

    response = post_file(client, name, data, content_type)

    assert response.status_code == status, response.content
    body = response.json()
    text = body["detail"] if status != 400 else body["file"][0]
    assert message in text
    assert_nothing_stored()


def test_a_file_over_the_tiers_limit_is_refused_with_413(db, make_user, client_for):
    client = client_for(make_user())

    response = post_file(client, "big.txt", b"word " * (FREE_TIER_MAX_BYTES // 5 + 1), "text/plain")

    assert response.status_code == 413
    assert response.json()["max_bytes"] == FREE_TIER_MAX_BYTES
    assert "the Free tier allows at most 1,000,000 bytes" in response.json()["detail"]
    assert_nothing_stored()


def test_a_body_declared_too_large_is_refused_before_it_is_read(db, make_user, client_for):
    client = client_for(make_user())

    # Only the header says so; the view answers from it without parsing what follows.
    response = client.generic(
        "POST", "/api/v1/documents/", b"{}", content_type="application/json", CONTENT_LENGTH=str(5_000_000)
    )

    assert response.status_code == 413
    assert "The request body is 5,000,000 bytes" in response.json()["detail"]
    assert_nothing_stored()


def test_a_json_body_over_djangos_memory_limit_is_refused_with_413_and_a_hint(db, make_user, client_for, settings):
    client = client_for(make_user(tier="pro"))  # the tier would allow 10 MB
    text = "word " * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 5 + 10)

    response = client.post("/api/v1/documents/", {"title": "t", "text": text}, format="json")

    assert response.status_code == 413
    assert "upload a larger document as a file" in response.json()["detail"]
    assert_nothing_stored()
    big_file = SimpleUploadedFile("big.txt", text.encode(), "text/plain")
    assert client.post("/api/v1/documents/", {"file": big_file}).status_code == 202


def test_the_limit_follows_the_tier(db, make_user, client_for):
    text = "word " * (FREE_TIER_MAX_BYTES // 5 + 10)
    free, pro = client_for(make_user()), client_for(make_user(tier="pro"))

    assert free.post("/api/v1/documents/", {"title": "t", "text": text}, format="json").status_code == 413
    assert pro.post("/api/v1/documents/", {"title": "t", "text": text}, format="json").status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "title"),
        ({"title": "t"}, "text"),
        ({"title": "t", "text": "   "}, "text"),
        ({"title": "t", "text": 42}, "text"),
        ({"title": "t", "text": "a\x00b"}, "text"),
        ({"title": "x" * 256, "text": "fine"}, "title"),
    ],
)
def test_bad_json_documents_answer_400_with_field_errors(db, make_user, client_for, body, field):
    response = client_for(make_user()).post("/api/v1/documents/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert_nothing_stored()


def test_an_unsupported_request_body_answers_415(db, make_user, client_for):
    response = client_for(make_user()).post("/api/v1/documents/", "<doc/>", content_type="application/xml")

    assert response.status_code == 415
    assert_nothing_stored()


def test_a_bad_batch_stores_none_of_its_documents(db, make_user, client_for):
    client = client_for(make_user())
    good = {"title": "fine", "text": "fine text"}

    assert (
        client.post("/api/v1/documents/batch/", {"documents": [good, {"title": "x"}]}, format="json").status_code == 400
    )
    assert client.post("/api/v1/documents/batch/", {"documents": []}, format="json").status_code == 400
    too_big = [{"title": str(n), "text": "w" * 520_000} for n in range(2)]  # each fits, together they do not
    response = client.post("/api/v1/documents/batch/", {"documents": too_big}, format="json")
    assert response.status_code == 413 and "The batch is 1,040,000 bytes" in response.json()["detail"]
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("name", "data", "content_type", "expected_text"),
    [
        ("notes.md", b"# Title\n\nSome *markdown* text.\r\n", "application/octet-stream",
         "# Title\n\nSome *markdown* text."),
        ("page.html", b"<html><head><style>p{}</style></head><body><h1>Head</h1><p>One &amp; two</p></body></html>",
         "text/html", "Head\n\nOne & two"),
        ("bom.txt", "\ufeffplain text".encode(), "text/plain", "plain text"),
        ("letter.pdf", make_pdf(["Dear reader,", "the PDF text layer is read."]), "application/pdf",
         "Dear reader,\nthe PDF text layer is read."),
    ],
)  # fmt: skip
def test_supported_files_are_stored_as_their_text(db, make_user, client_for, name, data, content_type, expected_text):
    response = post_file(client_for(make_user()), name, data, content_type)

    assert response.status_code == 202, response.content
    document = Document.objects.get(pk=response.json()["id"])
    assert document.text == expected_text
    assert (document.source, document.file_name, document.size_bytes) == ("file", name, len(data))
