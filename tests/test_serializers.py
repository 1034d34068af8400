"""common.serializers.SharedFieldsSerializer validates as DRF's own Serializer does."""

import threading

import pytest
from rest_framework import serializers

from common.fields import StrictCharField
from common.serializers import SharedFieldsSerializer


def _declarations() -> dict:
    return {
        "text": StrictCharField(help_text="Some text."),
        "count": serializers.IntegerField(required=False, min_value=1, source="count_id"),
        "colour": serializers.ChoiceField(choices=["red", "green"], required=False, default="red"),
    }


Plain = type("Plain", (serializers.Serializer,), _declarations())
Shared = type("Shared", (SharedFieldsSerializer,), _declarations())

BODIES = [
    {"text": "hi"},
    {"text": "hi", "count": 3, "colour": "green"},
    {},
    {"text": 5},
    {"text": "", "count": 0},
    {"text": "hi", "count": "x", "colour": "blue"},
    {"text": "a\x00b"},
    "not an object",
]


@pytest.mark.parametrize("data", BODIES)
@pytest.mark.parametrize("options", [{}, {"partial": True}, {"context": {"request": None}}])
def test_it_accepts_and_refuses_what_drfs_serializer_does_with_the_same_messages(data, options):
    plain, shared = Plain(data=data, **options), Shared(data=data, **options)

    assert list(shared.fields) == list(plain.fields) == ["text", "count", "colour"]
    assert shared.is_valid() == plain.is_valid()
    assert shared.errors == plain.errors
    if plain.is_valid():
        assert shared.validated_data == plain.validated_data
        if not options:
            assert shared.data == plain.data


def test_instances_that_stand_alone_share_one_set_of_fields_and_others_have_their_own():
    first, second = Shared(data={}), Shared(data={"text": "x"})
    assert first.fields is second.fields
    assert first.fields["text"] is not Shared._declared_fields["text"]
    assert first.fields["text"].parent is not first and not first.fields["text"].root.partial

    for own in (Shared(data={}, partial=True), Shared(data={}, context={"a": 1}), Shared(instance={"text": "x"})):
        assert own.fields is not first.fields
        assert own.fields is own.fields  # built once per instance
        assert all(field.parent is own for field in own.fields.values())

    items = [{"text": "a"}, {"text": 5}, {}]
    many, plain_many = Shared(data=items, many=True, partial=True), Plain(data=items, many=True, partial=True)
    assert not many.is_valid() and not plain_many.is_valid()
    assert many.errors == plain_many.errors and list(many.errors) == [1]  # the third is no error when partial
    assert many.child.fields is not first.fields and many.child.fields["text"].root is many


def test_the_shared_fields_cannot_be_changed():
    shared = Shared(data={})
    with pytest.raises(TypeError, match="shared by its instances"):
        shared.fields["extra"] = serializers.CharField()
    with pytest.raises(TypeError, match="shared by its instances"):
        del shared.fields["text"]
    assert list(Shared(data={}).fields) == ["text", "count", "colour"]


def test_a_field_that_needs_its_serializer_or_a_nested_one_gives_every_instance_its_own_fields():
    class Needs:
        requires_context = True

        def __call__(self, value: object, field: serializers.Field) -> None:
            assert field.root is serializer  # the instance validating, not a prototype

    class WithValidator(SharedFieldsSerializer):
        text = serializers.CharField(validators=[Needs()])

    class WithNested(SharedFieldsSerializer):
        inner = Shared()

    class WithMethod(SharedFieldsSerializer):
        text = serializers.CharField()
        shout = serializers.SerializerMethodField()

        def get_shout(self, data: dict) -> str:
            return self.initial_data["text"].upper()  # this instance's, not a prototype's

    class MyCharField(serializers.CharField):  # not DRF's or the project's: it may read its parent
        pass

    class WithOwnField(SharedFieldsSerializer):
        text = MyCharField()

    class WithInit(SharedFieldsSerializer):
        text = serializers.CharField()

        def __init__(self, *args: object, optional: bool = False, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            if optional:
                self.fields["text"].required = False

    assert Shared._shareable
    for cls in (WithValidator, WithNested, WithMethod, WithOwnField, WithInit):
        assert not cls._shareable, cls
    method = WithMethod(data={"text": "mine"})
    assert method.is_valid() and method.data["shout"] == "MINE"
    assert WithInit(data={}, optional=True).is_valid() and not WithInit(data={}).is_valid()
    serializer = WithValidator(data={"text": "x"})
    assert serializer.is_valid(), serializer.errors
    assert WithValidator(data={}).fields is not WithValidator(data={}).fields
    nested = WithNested(data={"inner": {"text": 7}})
    assert not nested.is_valid() and nested.errors == {"inner": {"text": ["Must be a string."]}}


def test_threads_validating_at_once_with_the_shared_fields_each_get_their_own_result():
    expected = []
    for data in BODIES:
        plain = Plain(data=data)
        expected.append((plain.is_valid(), plain.errors, dict(plain.validated_data) if plain.is_valid() else None))
    failures: list[str] = []
    start = threading.Barrier(8)

    def validate(offset: int) -> None:
        start.wait()
        for round_ in range(300):
            index = (offset + round_) % len(BODIES)
            shared = Shared(data=BODIES[index])
            valid = shared.is_valid()
            got = (valid, shared.errors, dict(shared.validated_data) if valid else None)
            if got != expected[index]:
                failures.append(f"{BODIES[index]!r}: {got!r} != {expected[index]!r}")

    threads = [threading.Thread(target=validate, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
