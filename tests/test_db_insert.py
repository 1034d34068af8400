"""common.db.instance_insert writes the row Model.save() writes: defaults, auto_now_add, JSON, keys."""

import uuid

from django.forms.models import model_to_dict

from common.db import instance_insert
from jobs.models import TaskRecord
from prompts.models import PromptRequest


def _stored(model, pk):
    row = model_to_dict(model.objects.get(pk=pk))
    row.pop("id")
    return row


def test_an_inserted_request_is_the_row_save_writes(make_user):
    user = make_user()
    fields = {"owner": user, "kind": "chat", "model": "gpt-test", "prompt_text": "hello", "input": {"n": [1, "two"]}}

    inserted = instance_insert(PromptRequest(task_id=uuid.uuid4(), **fields))
    saved = PromptRequest.objects.create(task_id=uuid.uuid4(), **fields)

    assert inserted.pk is not None and not inserted._state.adding
    assert inserted.created_at is not None  # auto_now_add filled in, as by save()
    mine, theirs = _stored(PromptRequest, inserted.pk), _stored(PromptRequest, saved.pk)
    assert mine.pop("task_id") != theirs.pop("task_id")
    assert mine == theirs
    assert PromptRequest.objects.get(pk=inserted.pk).input == {"n": [1, "two"]}  # JSON, not a string


def test_a_record_with_its_own_uuid_key_keeps_it(db):
    record = TaskRecord(id=uuid.uuid4(), name="x.y", queue="default", args=[1, "a"], kwargs={"k": None})

    instance_insert(record)

    stored = TaskRecord.objects.get(pk=record.pk)
    assert (stored.args, stored.kwargs, stored.state, stored.sends) == ([1, "a"], {"k": None}, "WAITING", 0)
