"""Serializer bases shared by the apps' APIs."""

from typing import Any

from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict


class _SharedFields(BindingDict):
    """A prototype's bound fields, shared by the instances of its class: not to be changed."""

    frozen = False

    def _check(self) -> None:
        if self.frozen:
            raise TypeError(
                f"{type(self.serializer).__name__}'s fields are shared by its instances and cannot be changed; "
                "change them in a subclass, or give the instance a context (it then has fields of its own)."
            )

    def __setitem__(self, key: str, field: serializers.Field) -> None:
        self._check()
        super().__setitem__(key, field)

    def __delitem__(self, key: str) -> None:
        self._check()
        super().__delitem__(key)


# The fields an instance may share: DRF's own value fields (and this project's, built on them),
# whose validation and representation read nothing of their serializer but the root's
# `partial` and `context`. Not a subclass from elsewhere, which may read its parent.
_VALUE_FIELDS = (
    serializers.BooleanField,
    serializers.CharField,  # with EmailField, RegexField, SlugField, URLField, IPAddressField
    serializers.ChoiceField,  # with MultipleChoiceField and FilePathField
    serializers.DateField,
    serializers.DateTimeField,
    serializers.DecimalField,
    serializers.DurationField,
    serializers.FloatField,
    serializers.IntegerField,
    serializers.TimeField,
    serializers.UUIDField,
)
_VALUE_FIELD_MODULES = ("rest_framework.fields", "common.fields")


def _shareable(field: serializers.Field) -> bool:
    """Whether instances of a serializer may validate with one bound copy of `field`."""
    if not isinstance(field, _VALUE_FIELDS) or type(field).__module__ not in _VALUE_FIELD_MODULES:
        return False
    return not getattr(field.default, "requires_context", False) and not any(
        getattr(validator, "requires_context", False) for validator in field.validators
    )


class SharedFieldsSerializer(serializers.Serializer):
    """A plain Serializer whose instances validate with one set of fields, built once per class.

    DRF builds every declared field again for each instance (a deep copy of its declaration)
    and binds it to that instance. For the accepted POST's three fields that was a third of
    validating its body, more on the new thread each request runs in. A value field (text,
    numbers, choices, dates: `_VALUE_FIELDS`) keeps nothing of a validation, and of its
    serializer reads only the root's `partial` and `context`. So an instance that stands alone
    (no parent, no context, not partial, no instance) of a class whose fields are all such
    fields uses the fields of a prototype of its class, built and bound by DRF once. Any other
    instance builds fields of its own as DRF does, and so does every instance of a class with
    another kind of field (nested serializers, method fields, lists), a validator or default
    that `requires_context`, or an `__init__` or `get_fields` of its own. The shared set cannot
    be changed (TypeError), nor should its fields be: a serializer that changes its fields per
    instance does so in its `__init__`. `tests/test_serializers.py` compares it with DRF's.
    """

    _shareable = True  # decided per class, when it is made
    _shared: _SharedFields | None = None  # the prototype's fields, per class

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._shareable = (
            cls.__init__ is SharedFieldsSerializer.__init__  # an __init__ of its own may change its fields
            and cls.get_fields is SharedFieldsSerializer.get_fields
            and all(_shareable(field) for field in cls._declared_fields.values())
        )
        cls._shared = None  # never a parent class's

    @property
    def fields(self) -> BindingDict:  # type: ignore[override]
        own = self.__dict__.get("_own_fields")
        if own is not None:
            return own
        if self._shareable and self.parent is None and not self._context and not self.partial and self.instance is None:
            return self._shared_fields()
        own = self.__dict__["_own_fields"] = serializers.Serializer.fields.func(self)
        return own

    @classmethod
    def _shared_fields(cls) -> _SharedFields:
        shared = cls._shared
        if shared is None:  # two threads may both build them: either set is right
            prototype = cls()
            shared = _SharedFields(prototype)
            for name, field in prototype.get_fields().items():
                shared[name] = field  # binds it to the prototype
            shared.frozen = True
            cls._shared = shared
        return shared
