"""Inserting a row in a hand-built statement, with the values `Model.save()` would write.

For the inserts every accepted request makes (the request and its task record, in one
statement): the ORM compiles its INSERT anew each time (about 0.2 ms of CPU per row), where
this builds the same column list and values from the model's fields. No `pre_save`/`post_save`
signals are sent; use it only for models without receivers, `db_default` or generated fields
(neither is handled here). `tests/test_db_insert.py` checks that the rows equal what `save()`
writes.
"""

from functools import lru_cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import AutoField, BigAutoField, DateField, DateTimeField, Field, Model, SmallAutoField, TimeField

_AUTO = (AutoField, BigAutoField, SmallAutoField)
# `pre_save` methods that only read the attribute when the field has no auto_now/auto_now_add.
_READING_PRE_SAVE = {Field.pre_save, DateField.pre_save, DateTimeField.pre_save, TimeField.pre_save}
_IMMUTABLE = (str, int, float, type(None))  # and their subclasses (choices' enum members)


def _constant_default(field: Field) -> tuple[Any, Any] | None:
    """(default, its prepared value) for a field of Django's own whose default is a constant
    immutable value that `pre_save` leaves as it is; None for any other field.

    A new instance holds that very object (`Field.get_default()` returns it, and "" and None
    are single objects), so an attribute that *is* it needs no preparing on each insert.
    Fields of other packages are prepared every time: their preparing may not be a function
    of the value alone.
    """
    if not type(field).__module__.startswith("django.db.models.fields"):
        return None
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return None
    if type(field).pre_save not in _READING_PRE_SAVE or (field.has_default() and callable(field.default)):
        return None
    default = field.get_default()
    if not isinstance(default, _IMMUTABLE):
        return None
    return default, field.get_db_prep_save(default, connections[DEFAULT_DB_ALIAS])


@lru_cache(maxsize=64)
def _plan(
    model: type[Model], exclude: tuple[str, ...], prefix: str, empty: tuple[str, ...]
) -> tuple[str, str, tuple[tuple[str, Field, tuple[Any, Any] | None], ...]]:
    """(columns, placeholders, and per parameter: its name, field and constant default) for
    inserting `model` without the `exclude`d columns and the `empty` auto-increment ones."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    fields = [f for f in model._meta.concrete_fields if f.column not in exclude and f.attname not in empty]
    names = [f"{prefix}{number}" for number in range(len(fields))]
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(f"%({name})s" for name in names)
    return columns, placeholders, tuple((n, f, _constant_default(f)) for n, f in zip(names, fields, strict=True))


@lru_cache(maxsize=64)
def _auto_fields(model: type[Model]) -> tuple[str, ...]:
    return tuple(field.attname for field in model._meta.concrete_fields if isinstance(field, _AUTO))


def insert_values(
    instance: Model, *, exclude: tuple[str, ...] = (), prefix: str = "v"
) -> tuple[str, str, dict[str, Any]]:
    """(columns, placeholders, parameters) to insert unsaved `instance` as `save()` would.

    Defaults, `auto_now_add` and JSON are prepared as the ORM prepares them; an auto-increment
    key left empty is left to the database. Placeholders are named `%(v0)s`, `%(v1)s`, ... (the
    `prefix` instead of `v`, so that two inserts can share a statement). The statement's parts
    are made once per model, columns and prefix; only the values are prepared on each call, but
    for attributes still holding their field's constant default (`_constant_default`).
    """
    db = connections[DEFAULT_DB_ALIAS]  # the thread's connection itself, not the proxy looked up on each use
    model = type(instance)
    empty = tuple(name for name in _auto_fields(model) if getattr(instance, name) is None)
    columns, placeholders, plan = _plan(model, exclude, prefix, empty)
    params = {}
    for name, field, constant in plan:
        if constant is not None and getattr(instance, field.attname) is constant[0]:
            params[name] = constant[1]
        else:
            params[name] = field.get_db_prep_save(field.pre_save(instance, True), db)
    return columns, placeholders, params
