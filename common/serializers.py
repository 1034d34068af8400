"""Serializer bases shared by the apps' APIs."""

import copy

from rest_framework import serializers

_IMMUTABLE = (str, int, float, bool, type(None))


class FieldsFromDeclarationsSerializer(serializers.Serializer):
    """A Serializer whose instances build their fields from the declarations' arguments.

    DRF's `get_fields()` deep-copies every declared field for each instance, and a field's deep
    copy is the field built again from deep copies of its arguments: half the CPU of validating
    a small body (the accepted POST's three fields, about 20 µs). A field whose arguments are
    all immutable (strings, numbers, None: nothing to copy) is built again from the same
    arguments here, which is what the deep copy comes to; any other is deep-copied as DRF does.
    Which fields are built again is decided when the class is made. For plain Serializers only:
    a ModelSerializer's fields come from its model, which this `get_fields` leaves out.
    """

    _rebuilt: frozenset[str] = frozenset()  # the declared fields built again from their arguments

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._rebuilt = frozenset(
            name
            for name, field in cls._declared_fields.items()
            if all(type(value) in _IMMUTABLE for value in (*field._args, *field._kwargs.values()))
        )

    def get_fields(self) -> dict[str, serializers.Field]:
        rebuilt = self._rebuilt
        return {
            name: type(field)(*field._args, **field._kwargs) if name in rebuilt else copy.deepcopy(field)
            for name, field in self._declared_fields.items()
        }
