"""common.db.insert_values writes the row Model.save() writes: defaults, auto_now_add, JSON, keys.

Through its users: the accepted request's statement (`request_accept`) and `task_dispatch`.
"""

import uuid

from django.forms.models import model_to_dict

from jobs.models import TaskRecord
from jobs.services import task_dispatch
from prompts.models import PromptRequest
from prompts.services import request_accept
from users.services import user_tier


def _stored(model, pk):
    row = model_to_dict(model.objects.get(pk=pk))
    row.pop("id")
    return row


def test_an_inserted_request_is_the_row_save_writes(make_user):
    user = make_user()
    fields = {"kind": "chat", "model": "gpt-test", "prompt_text": "hello", "input": {"n": [1, "two"]}}

    inserted = request_accept(user=user, tier=user_tier(user), **fields)
    saved = PromptRequest.objects.create(owner=user, task_id=uuid.uuid4(), **fields)

    assert inserted.pk is not None and not inserted._state.adding
    assert inserted.created_at is not None  # auto_now_add filled in, as by save()
    mine, theirs = _stored(PromptRequest, inserted.pk), _stored(PromptRequest, saved.pk)
    assert mine.pop("task_id") != theirs.pop("task_id")
    assert mine == theirs
    assert PromptRequest.objects.get(pk=inserted.pk).input == {"n": [1, "two"]}  # JSON, not a string


def test_a_record_with_its_own_uuid_key_keeps_it(db):
    key = uuid.uuid4()

    task_dispatch(name="x.y", queue="default", args=[1, "a"], kwargs={"k": None}, task_id=key)

    stored = TaskRecord.objects.get(pk=key)
    assert (stored.args, stored.kwargs, stored.state, stored.sends) == ([1, "a"], {"k": None}, "WAITING", 0)


def test_only_djangos_own_fields_with_a_constant_default_are_prepared_once():
    from django.db import models

    from common.db import _constant_default

    class Custom(models.CharField):
        pass

    plain = models.CharField(max_length=5, default="")
    plain.set_attributes_from_name("plain")
    assert _constant_default(plain) == ("", "")
    stamped = models.DateTimeField(auto_now_add=True)
    assert _constant_default(stamped) is None  # pre_save writes the time
    assert _constant_default(models.JSONField(default=dict)) is None  # a new dict each time
    assert _constant_default(Custom(max_length=5, default="")) is None  # another package's preparing
    nullable = models.DateTimeField(null=True)
    assert _constant_default(nullable) == (None, None)
