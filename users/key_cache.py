"""API keys kept by each web process, dropped when PostgreSQL says their rows changed.

Every API request looks its key up: a PostgreSQL round trip, and the key, its user and the
user's tier built from the row. This keeps what a lookup loaded, per key hash, and hands each
request its own copies, with no round trip.

What drops a kept key is PostgreSQL itself: triggers on the key, user and tier tables
(migration 0006) send a notification on channel `users_key_cache` for every change a kept key
could depend on, whoever makes it (`save()`, a bulk `update()`, a migration, psql). Changes to
the user's daily counters and to a key's `last_used_at`, which every request makes, send none:
the counters are not kept (read from the database when used), and a key's last use is kept up
to date by the process that notes it. Each web process listens on its own connection, in a
thread, and drops the keys of the user named (every key, for a tier) as the notification
arrives, milliseconds after the change commits; `key_cache_sync()` waits until every change
committed before it has been applied, for code (and tests) that must read their own writes.

A key read inside a transaction is not kept (its rows may be uncommitted changes of that
transaction), and nothing is kept while the listening connection is down: the cache is emptied
when it fails, and used again once it listens anew. API_KEY_CACHE=False turns it off.
"""

import logging
import threading
import time
import uuid
from copy import deepcopy
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import JSONField, Model
from django.db.models.base import ModelState

from users.models import ApiKey, User

logger = logging.getLogger(__name__)

CHANNEL = "users_key_cache"
ALL = "*"  # a notification's payload that drops every key (a tier changed); else a user's id
LISTENER_NAME = "api-key-cache"  # the listening connection's application_name (pg_stat_activity)
MAX_KEYS = 10_000  # kept keys per process; the cache starts again empty past it
# The user's fields that change on every request (daily counters): never kept, read when used.
USER_COUNTERS = ("requests_today", "tokens_today", "usage_date")

_lock = threading.Lock()
_keys: dict[str, ApiKey] = {}  # key hash -> the key as loaded, its user and tier attached
_generation = 0  # moves on every notification: a lookup that raced one is not kept
_listening = False
_listener: threading.Thread | None = None
_synced: set[str] = set()  # `key_cache_sync` markers the listener has seen
_seen = threading.Condition(_lock)
_stopping = threading.Event()


def api_key_get(key_hash: str) -> ApiKey | None:
    """The live key with this hash, its `user` and the user's `tier` loaded: a kept one's copies,
    or looked up (`users.authentication.api_key_lookup`) and kept for the next request."""
    from users.authentication import api_key_lookup

    if not settings.API_KEY_CACHE:
        return api_key_lookup(key_hash)
    _listener_ensure()
    kept = _keys.get(key_hash)
    if kept is not None:
        return _key_copy(kept)
    generation, in_transaction = _generation, connections[DEFAULT_DB_ALIAS].in_atomic_block
    api_key = api_key_lookup(key_hash)
    if api_key is None or in_transaction or not _listening:
        return api_key
    kept = _key_copy(api_key, without=USER_COUNTERS)
    with _lock:
        if _listening and _generation == generation:  # no change notified since the lookup began
            if len(_keys) >= MAX_KEYS:
                _keys.clear()
            _keys[key_hash] = kept
    return api_key


def api_key_used(key_hash: str, api_key: ApiKey) -> None:
    """Note a key's `last_used_at` on its kept copy (that column's changes are not notified)."""
    kept = _keys.get(key_hash)
    if kept is not None and kept.pk == api_key.pk:
        kept.last_used_at = api_key.last_used_at


def key_cache_sync(timeout: float = 5.0) -> bool:
    """Wait until every change committed before this call has dropped the keys it concerns
    (a marker sent on the channel after them comes back); False if none came back in time."""
    if not settings.API_KEY_CACHE or not _listening:
        return True
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:  # nothing read in a transaction was kept
        return True
    marker = f"sync:{uuid.uuid4().hex}"
    _notify(marker)
    deadline = time.monotonic() + timeout
    with _seen:
        while marker not in _synced:
            left = deadline - time.monotonic()
            if left <= 0 or not _listening:
                return not _listening  # an emptied cache keeps nothing stale either
            _seen.wait(left)
        _synced.discard(marker)
    return True


def key_cache_stop(timeout: float = 5.0) -> None:
    """Stop listening and empty the cache (before the database is dropped, say); the next
    lookup starts listening again."""
    global _listener
    listener = _listener
    if listener is None or not listener.is_alive():
        return
    _stopping.set()
    _notify("stop")
    listener.join(timeout)
    _listener = None
    _stopping.clear()


def _notify(payload: str) -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])


def kept_keys() -> int:
    """How many keys this process keeps (for tests and the curious)."""
    return len(_keys)


def is_listening() -> bool:
    return _listening


# Copies ---------------------------------------------------------------------------------------


def _copy(instance: Model, without: tuple[str, ...] = ()) -> Model:
    """A separate instance with the same loaded values (JSON values copied too); `without`
    fields deferred, so that reading them asks the database."""
    clone = type(instance).__new__(type(instance))
    values = clone.__dict__
    values.update(instance.__dict__)
    for name in without:
        values.pop(name, None)
    for name in _json_attnames(type(instance)):
        if name in values:
            values[name] = deepcopy(values[name])
    state = values["_state"] = ModelState()
    state.adding, state.db = False, instance._state.db
    return clone


_JSON: dict[type, tuple[str, ...]] = {}


def _json_attnames(model: type[Model]) -> tuple[str, ...]:
    names = _JSON.get(model)
    if names is None:
        names = _JSON[model] = tuple(f.attname for f in model._meta.concrete_fields if isinstance(f, JSONField))
    return names


def _key_copy(api_key: ApiKey, without: tuple[str, ...] = ()) -> ApiKey:
    """Copies of the key, its user (`without` those fields) and the user's tier, linked."""
    key = _copy(api_key)
    user: User = _copy(api_key.user, without)
    tier = api_key.user.tier
    user.tier = _copy(tier) if tier is not None else None
    key.user = user
    return key


# The listening thread ---------------------------------------------------------------------------


def _listener_ensure() -> None:
    global _listener
    if _listener is not None and _listener.is_alive():
        return
    with _lock:
        if _listener is None or not _listener.is_alive():
            _listener = threading.Thread(target=_listen_forever, name="key-cache-listener", daemon=True)
            _listener.start()


def _set_listening(listening: bool) -> None:
    global _listening, _generation
    with _lock:
        _keys.clear()
        _generation += 1
        _listening = listening
        _seen.notify_all()


def _apply(payload: str) -> None:
    global _generation
    with _lock:
        _generation += 1
        if payload.startswith("sync:"):
            _synced.add(payload)
            _seen.notify_all()
        elif payload == ALL:
            _keys.clear()
        else:
            for key_hash in [h for h, key in _keys.items() if str(key.user_id) == payload]:
                del _keys[key_hash]


def _listen_forever() -> None:
    pause = 0.5
    while not _stopping.is_set():
        try:
            params = connections[DEFAULT_DB_ALIAS].get_connection_params()
            params.pop("cursor_factory", None)
            params["application_name"] = LISTENER_NAME
            with psycopg.connect(**params, autocommit=True) as listener:
                listener.execute(f"LISTEN {CHANNEL}")
                _set_listening(True)
                pause = 0.5
                _listen(listener)
        except Exception as exc:  # psycopg raises several kinds; any of them ends the listening
            logger.warning("API key cache: not listening for changes (%s); keys are looked up meanwhile", exc)
        finally:
            _set_listening(False)
        _stopping.wait(pause)
        pause = min(pause * 2, 30)


def _listen(listener: psycopg.Connection[Any]) -> None:
    """Apply notifications as they come; check the connection when none came for a while."""
    while not _stopping.is_set():
        for notify in listener.notifies(timeout=10):
            if _stopping.is_set():
                return
            _apply(notify.payload)
        listener.execute("SELECT 1")  # raises if the server went away without a word
