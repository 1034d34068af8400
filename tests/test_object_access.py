"""Object-level access and read-only fields, over every endpoint that takes an id or writes.

Three promises, each a table: adding an endpoint is adding one line.
- Another user's id answers exactly as an id that does not exist (404 for a path, the same 400
  for a filter or a reference in a body), with every verb, and changes nothing of theirs.
- Staff-only endpoints answer 403 to an ordinary user.
- Read-only fields sent to a create or update endpoint (owner, status, result, task id,
  counters, timestamps, tier, ...) are ignored or refused with 400: never stored, which is
  checked by reading the row back from the database.
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import models
from django.utils import timezone

from jobs.models import TaskRecord
from notifications.models import Delivery, SystemNotification, WebhookEndpoint
from prompts.models import Conversation, PromptRequest, PromptResponse
from sync.models import Document, DocumentBatch
from users.models import User

MISSING_ID = 2_000_000_000
MISSING_UUID = "00000000-0000-4000-8000-000000000000"


def _owned_objects(owner: User) -> dict[str, Any]:
    """One of each kind of object `owner` can have, by the placeholder its paths use."""
    conversation = Conversation.objects.create(owner=owner, title="theirs")
    prompt = PromptRequest.objects.create(owner=owner, model="gpt-4o-mini", prompt_text="theirs", status="PENDING")
    failed = PromptRequest.objects.create(owner=owner, model="gpt-4o-mini", prompt_text="theirs", status="FAILED")
    image = PromptRequest.objects.create(
        owner=owner, kind="image", model="gpt-image-1", prompt_text="theirs", status="COMPLETED"
    )
    PromptResponse.objects.create(
        request=image, provider="offline", model="gpt-image-1", file=ContentFile(b"\x89PNG", name="theirs.png")
    )
    batch = DocumentBatch.objects.create(owner=owner)
    document = Document.objects.create(
        owner=owner, batch=batch, title="theirs", text="theirs", checksum="c" * 64, status="EMBEDDED"
    )
    webhook = WebhookEndpoint.objects.create(owner=owner, url="https://example.com/h", events=["prompt.completed"])
    Delivery.objects.create(endpoint=webhook, event="prompt.completed", payload={}, max_attempts=3)
    task = TaskRecord.objects.create(name="prompts.process_prompt_request", queue="prompts.low", owner=owner)
    return {
        "conversation": conversation,
        "prompt": prompt,
        "failed_prompt": failed,
        "image": image,
        "batch": batch,
        "document": document,
        "webhook": webhook,
        "task": task,
    }


def _snapshot(objects: dict[str, Any]) -> dict[str, Any]:
    """Every field of every object, as stored now (None for a row that is gone)."""
    snapshot = {}
    for name, obj in objects.items():
        row = type(obj).objects.filter(pk=obj.pk).values().first()
        if row is not None:
            row.pop("updated_at", None)  # a read may not touch anything else; "last seen" stamps aside
        snapshot[name] = row
    return snapshot


def _call(client: Any, method: str, path: str, body: Any = None) -> Any:
    return getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)


# (method, path, body): {name} is another user's object of that kind; the same call with an id that
# does not exist must get the same answer.
OTHERS_IDS = [
    ("get", "/api/v1/prompts/{prompt}/", None),
    ("put", "/api/v1/prompts/{prompt}/", {"prompt_text": "mine now"}),
    ("patch", "/api/v1/prompts/{prompt}/", {"status": "CANCELLED"}),
    ("delete", "/api/v1/prompts/{prompt}/", None),
    ("post", "/api/v1/prompts/{prompt}/cancel/", None),
    ("post", "/api/v1/prompts/{failed_prompt}/retry/", None),
    ("get", "/api/v1/images/{image}/file/", None),
    ("get", "/api/v1/conversations/{conversation}/", None),
    ("patch", "/api/v1/conversations/{conversation}/", {"title": "mine now"}),
    ("delete", "/api/v1/conversations/{conversation}/", None),
    ("get", "/api/v1/documents/{document}/", None),
    ("patch", "/api/v1/documents/{document}/", {"title": "mine now"}),
    ("delete", "/api/v1/documents/{document}/", None),
    ("get", "/api/v1/webhooks/{webhook}/", None),
    ("patch", "/api/v1/webhooks/{webhook}/", {"url": "https://example.com/mine"}),
    ("delete", "/api/v1/webhooks/{webhook}/", None),
    ("get", "/api/v1/tasks/{task}/", None),
    ("post", "/api/v1/tasks/{task}/revoke/", None),
    ("get", "/api/v1/tasks/{task}/events/", None),
    # Ids in filters and bodies: another user's reads like one that does not exist.
    ("get", "/api/v1/documents/?batch={batch}", None),
    ("get", "/api/v1/notifications/deliveries/?endpoint={webhook}", None),
    ("post", "/api/v1/prompts/", {"prompt_text": "continue", "conversation": "{conversation}"}),
]


def _fill(template: Any, values: dict[str, Any]) -> Any:
    if isinstance(template, str):
        for name, value in values.items():
            if template == "{" + name + "}":
                return value
            template = template.replace("{" + name + "}", str(value))
        return template
    if isinstance(template, dict):
        return {key: _fill(value, values) for key, value in template.items()}
    return template


def _without_ids(answer: Any, ids: dict[str, Any]) -> str:
    """The JSON answer with the ids that were asked for blanked out (an error may name the id)."""
    text = json.dumps(answer.json(), sort_keys=True)
    for value in ids.values():
        text = text.replace(str(value), "<id>")
    return text


@pytest.mark.parametrize(("method", "path", "body"), OTHERS_IDS, ids=[f"{m} {p}" for m, p, _ in OTHERS_IDS])
def test_another_users_id_answers_as_one_that_does_not_exist(db, make_user, client_for, method, path, body):
    owner, intruder = make_user(), client_for(make_user(tier="premium"))
    objects = _owned_objects(owner)
    before = _snapshot(objects)
    theirs = {name: obj.pk for name, obj in objects.items()}
    missing = {name: MISSING_UUID if isinstance(obj.pk, uuid.UUID) else MISSING_ID for name, obj in objects.items()}

    answer = _call(intruder, method, _fill(path, theirs), _fill(body, theirs))
    answer_for_missing = _call(intruder, method, _fill(path, missing), _fill(body, missing))

    assert answer.status_code == answer_for_missing.status_code, answer.content
    assert _without_ids(answer, theirs) == _without_ids(answer_for_missing, missing)
    if "{" in path.split("?")[0]:
        assert answer.status_code in (404, 405), answer.content  # 405: a verb no object of theirs takes
    assert _snapshot(objects) == before


# (method, path, body): staff only.
STAFF_ONLY = [
    ("get", "/api/v1/tasks/active/", None),
    ("get", "/api/v1/tasks/workers/", None),
    ("post", "/api/v1/tasks/trigger/cleanup-cache/", None),
    ("post", "/api/v1/sync/full/", {}),
    ("post", "/api/v1/notifications/system/", {"title": "Hello", "body": "Everyone"}),
    ("get", "/api/v1/notifications/system/{system}/", None),
    ("post", "/api/v1/tasks/{own_task}/revoke/", {"terminate": True}),
]


@pytest.mark.parametrize(("method", "path", "body"), STAFF_ONLY, ids=[f"{m} {p}" for m, p, _ in STAFF_ONLY])
def test_staff_only_endpoints_answer_403_to_an_ordinary_user(db, make_user, client_for, method, path, body):
    user = make_user()
    system = SystemNotification.objects.create(title="t", body="b", created_by=make_user(staff=True))
    own_task = TaskRecord.objects.create(name="prompts.process_prompt_request", queue="prompts.low", owner=user)
    records_before = TaskRecord.objects.count()

    answer = _call(client_for(user), method, _fill(path, {"system": system.pk, "own_task": own_task.pk}), body)

    assert answer.status_code == 403, answer.content
    assert "detail" in answer.json()
    assert TaskRecord.objects.count() == records_before  # nothing was dispatched
    own_task.refresh_from_db()
    assert own_task.state == TaskRecord.State.WAITING


FORGED_TIME = "2001-02-03T04:05:06Z"
FORGED_UUID = "11111111-1111-4111-8111-111111111111"
# Read-only fields, as a client might try to set them; sent with every write below.
FORGED = {
    "id": 987_654_321,
    "status": "COMPLETED",
    "state": "SUCCESS",
    "result": {"forged": True},
    "response": {"text": "forged"},
    "error": "forged",
    "task_id": FORGED_UUID,
    "batch": FORGED_UUID,
    "created_at": FORGED_TIME,
    "updated_at": FORGED_TIME,
    "started_at": FORGED_TIME,
    "completed_at": FORGED_TIME,
    "finished_at": FORGED_TIME,
    "archived_at": FORGED_TIME,
    "embedded_at": FORGED_TIME,
    "disabled_at": FORGED_TIME,
    "chunk_count": 99,
    "checksum": "f" * 64,
    "size_bytes": 1,
    "embedding_model": "forged",
    "secret": "forged-secret",
    "is_active": False,
    "consecutive_failures": 99,
    "disabled_reason": "forged",
    "tier": "premium",
    "tier_pinned": True,
    "requests_today": 0,
    "tokens_today": 999,
    "daily_request_limit": 1_000_000,
    "used_today": 0,
    "is_staff": True,
    "generation": 99,
}


@dataclass
class Write:
    """One write endpoint: what it needs to succeed, and the model its row lands in."""

    method: str
    path: str
    body: dict[str, Any]
    model: type[models.Model] | None  # None: it writes no row of its own (the user's own settings)
    expect: dict[str, Any] = field(default_factory=dict)  # fields the endpoint itself decides


WRITES = [
    Write("post", "/api/v1/prompts/", {"prompt_text": "Hello"}, PromptRequest, {"kind": "chat"}),
    Write("post", "/api/v1/prompts/", {"prompt_text": "Hi", "kind": "image"}, PromptRequest, {"kind": "chat"}),
    Write(
        "post",
        "/api/v1/translations/",
        {"texts": ["Good morning"], "source_lang": "en", "target_langs": ["de"]},
        PromptRequest,
        {"kind": "translation"},
    ),
    Write("post", "/api/v1/images/", {"prompt": "a lighthouse"}, PromptRequest, {"kind": "image"}),
    Write("post", "/api/v1/query/", {"question": "When?"}, PromptRequest, {"kind": "query"}),
    Write("post", "/api/v1/conversations/", {"title": "Chat"}, Conversation),
    Write("post", "/api/v1/documents/", {"title": "Notes", "text": "The launch is on Tuesday."}, Document),
    Write("post", "/api/v1/documents/batch/", {"documents": [{"title": "A", "text": "Alpha text."}]}, Document),
    Write(
        "post", "/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "events": ["prompt.completed"]}, WebhookEndpoint
    ),
    Write("put", "/api/v1/notifications/preferences/", {"email": {"system": False}}, None),
    Write("patch", "/api/v1/notifications/preferences/", {"email": {"system": False}}, None),
    Write("post", "/api/v1/prompts/{failed_prompt}/retry/", {}, PromptRequest, {"kind": "chat"}),
    Write("post", "/api/v1/prompts/{pending_prompt}/cancel/", {}, PromptRequest, {"status": "CANCELLED"}),
    Write("post", "/api/v1/tasks/{task}/revoke/", {}, TaskRecord, {"state": "REVOKED"}),
    Write("put", "/api/v1/me/", {}, None),
    Write("patch", "/api/v1/me/", {}, None),
    Write("post", "/api/v1/me/", {}, None),
]


def _forged_values_in(row: models.Model, user: User) -> list[str]:
    """The read-only fields of `row` that hold what the client forged."""
    found = []
    for model_field in row._meta.concrete_fields:
        value = getattr(row, model_field.attname)
        if model_field.name in ("owner", "user", "created_by"):
            if value != user.pk:
                found.append(f"{model_field.name}={value}")
        elif model_field.name in FORGED and model_field.name not in ("status", "state", "error", "id"):
            forged = FORGED[model_field.name]
            if isinstance(value, datetime):
                hit = value.year == 2001
            else:
                hit = str(value) == str(forged) and not (isinstance(forged, bool) and value is model_field.default)
            if hit:
                found.append(f"{model_field.name}={value!r}")
    if row.pk == FORGED["id"]:
        found.append("id")
    if getattr(row, "error", "") == FORGED["error"]:
        found.append("error")
    return found


@pytest.mark.parametrize("write", WRITES, ids=[f"{w.method} {w.path} {w.body}"[:80] for w in WRITES])
def test_read_only_fields_sent_with_a_write_are_never_stored(db, make_user, client_for, settings, write):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    user, other = make_user(), make_user()
    failed = PromptRequest.objects.create(owner=user, model="gpt-4o-mini", prompt_text="again", status="FAILED")
    pending = PromptRequest.objects.create(owner=user, model="gpt-4o-mini", prompt_text="stop", status="PENDING")
    task = TaskRecord.objects.create(name="prompts.process_prompt_request", queue="prompts.low", owner=user)
    path = _fill(write.path, {"failed_prompt": failed.pk, "pending_prompt": pending.pk, "task": task.pk})
    tier_before = user.tier_id
    started = timezone.now()

    forged = {**FORGED, "owner": other.pk, "user": other.pk, **write.body}
    answer = _call(client_for(user), write.method, path, forged)

    assert answer.status_code in (200, 201, 202, 400, 405), answer.content
    user.refresh_from_db()
    assert (user.tier_id, user.tier_pinned, user.is_staff) == (tier_before, False, False)
    assert user.requests_today <= 1 and user.tokens_today == 0
    if write.model is None or answer.status_code >= 400:
        return
    if write.model is TaskRecord:
        rows = [TaskRecord.objects.get(pk=task.pk)]
    elif "{" in write.path:
        rows = [write.model.objects.get(pk=pending.pk if "cancel" in path else failed.pk)]
    else:
        rows = list(write.model.objects.filter(created_at__gte=started))
    assert rows, "the write answered success but stored nothing"
    for row in rows:
        assert _forged_values_in(row, user) == [], answer.content
        for name, value in write.expect.items():
            assert getattr(row, name) == value
        if isinstance(row, TaskRecord):
            assert row.result is None
        if isinstance(row, PromptRequest):
            assert row.status in ("PENDING", "CANCELLED") and not hasattr(row, "response")
        if isinstance(row, Document):
            assert row.status == "PENDING" and row.chunk_count == 0
        if isinstance(row, WebhookEndpoint):
            assert row.is_active and row.secret != FORGED["secret"] and row.consecutive_failures == 0
