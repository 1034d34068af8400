"""API key authentication: `Authorization: Token <key>` or `X-API-Key: <key>`."""

from functools import cache as once
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from users.key_cache import api_key_get, api_key_used
from users.models import ApiKey, Tier, User
from users.services import api_key_hash, api_key_touch


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Looks the key up by its hash; a revoked key or inactive user is refused."""

    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        key = request.headers.get("X-API-Key", "").strip()
        if not key:
            header = request.headers.get("Authorization", "").split()
            if not header or header[0].lower() != self.keyword.lower():
                return None
            if len(header) != 2:
                raise exceptions.AuthenticationFailed("Invalid token header: expected 'Token <key>'.")
            key = header[1]
        key_hash = api_key_hash(key)
        api_key = api_key_get(key_hash)
        if api_key is None:
            _count_failure(request)
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        if api_key_touch(api_key):
            api_key_used(key_hash, api_key)
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated requests.
        return self.keyword


_MODELS = (ApiKey, User, Tier)


@once
def _lookup_sql() -> str:
    """One statement for the key, its user and the user's tier (built once from the models)."""
    columns = ", ".join(
        f'{model._meta.db_table}."{field.column}"' for model in _MODELS for field in model._meta.concrete_fields
    )
    key, user, tier = (model._meta.db_table for model in _MODELS)
    return (
        f"SELECT {columns} FROM {key} JOIN {user} ON {user}.id = {key}.user_id "
        f"LEFT JOIN {tier} ON {tier}.id = {user}.tier_id "
        f"WHERE {key}.key_hash = %s AND {key}.revoked_at IS NULL"
    )


@once
def _converters() -> dict[type[Model], list[tuple[int, Any, list]]]:
    """Per model, the concrete fields whose database values the ORM converts, with their converters
    (`Field.get_db_converters`: JSON decoded, ...), by position; the other values load as they come."""
    db = connections[DEFAULT_DB_ALIAS]
    plans = {}
    for model in _MODELS:
        converting = ((i, f, f.get_db_converters(db)) for i, f in enumerate(model._meta.concrete_fields))
        plans[model] = [(i, f, converters) for i, f, converters in converting if converters]
    return plans


def _instance(model: type[Model], values: tuple) -> Model:
    """A loaded row, its values converted as the ORM converts them (JSON decoded, ...)."""
    db = connections[DEFAULT_DB_ALIAS]  # the thread's connection itself, not the proxy looked up on each use
    converted = list(values)
    for index, field, converters in _converters()[model]:
        value = converted[index]
        for convert in converters:
            value = convert(value, field, db)
        converted[index] = value
    return model.from_db(db.alias, None, converted)  # every concrete field: no names needed


def api_key_lookup(key_hash: str) -> ApiKey | None:
    """The live key with this hash, its `user` and the user's `tier` loaded, in one query.

    Every API request runs this. It is what `ApiKey.objects.select_related("user",
    "user__tier").get(...)` does, without the ORM compiling that query each time (about 1 ms of
    a request's CPU); users/tests/test_authentication.py checks that both give the same objects.
    """
    with connection.cursor() as cursor:
        cursor.execute(_lookup_sql(), [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    sizes = [len(model._meta.concrete_fields) for model in _MODELS]
    api_key = _instance(ApiKey, row[: sizes[0]])
    user = _instance(User, row[sizes[0] : sizes[0] + sizes[1]])
    tier_values = row[sizes[0] + sizes[1] :]
    user.tier = _instance(Tier, tier_values) if tier_values[0] is not None else None
    api_key.user = user
    return api_key


def _count_failure(request: Request) -> None:
    """Count a failed key per client address in the shared cache; too many in a minute is a 429."""
    key = f"auth-failures:{request.META.get('REMOTE_ADDR', '')}"
    try:
        cache.add(key, 0, timeout=60)
        failures = cache.incr(key)
    except Exception:  # the cache being down must not lock everyone out
        return
    if failures > settings.AUTH_FAILURES_PER_MINUTE:
        raise exceptions.Throttled(wait=60, detail="Too many failed authentications from this address; wait a minute.")
