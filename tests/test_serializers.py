"""common.serializers.FieldsFromDeclarationsSerializer validates as DRF's own Serializer does."""

import pytest
from rest_framework import serializers

from common.fields import StrictCharField
from common.serializers import FieldsFromDeclarationsSerializer


def _declarations() -> dict:
    return {
        "text": StrictCharField(help_text="Some text."),
        "count": serializers.IntegerField(required=False, min_value=1, source="count_id"),
        "colour": serializers.ChoiceField(choices=["red", "green"], required=False),  # a list: deep-copied
    }


Plain = type("Plain", (serializers.Serializer,), _declarations())
Rebuilt = type("Rebuilt", (FieldsFromDeclarationsSerializer,), _declarations())


@pytest.mark.parametrize(
    "data",
    [
        {"text": "hi"},
        {"text": "hi", "count": 3, "colour": "red"},
        {},
        {"text": 5},
        {"text": "", "count": 0},
        {"text": "hi", "count": "x", "colour": "blue"},
        {"text": "a\x00b"},
        "not an object",
    ],
)
def test_it_accepts_and_refuses_what_drfs_serializer_does_with_the_same_messages(data):
    plain, rebuilt = Plain(data=data), Rebuilt(data=data)

    assert list(rebuilt.fields) == list(plain.fields) == ["text", "count", "colour"]
    assert rebuilt.is_valid() == plain.is_valid()
    assert rebuilt.errors == plain.errors
    if plain.is_valid():
        assert rebuilt.validated_data == plain.validated_data


def test_each_instance_has_fields_of_its_own():
    first, second = Rebuilt(data={}), Rebuilt(data={})

    for name in ("text", "count", "colour"):
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name] is not Rebuilt._declared_fields[name]
        assert first.fields[name].parent is first
    assert Rebuilt._rebuilt == {"text", "count"}  # the choices list makes `colour` a deep copy
