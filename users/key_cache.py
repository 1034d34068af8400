"""API keys kept by each web process, dropped when PostgreSQL says their rows changed.

Every API request looks its key up: a PostgreSQL round trip, and the key, its user and the
user's tier built from the row. This keeps what a lookup loaded, per key hash, and hands each
request its own copies, with no round trip.

What drops a kept key is PostgreSQL itself: triggers on the key, user and tier tables
(migration 0006) send a notification on channel `users_key_cache` for every change a kept key
could depend on, whoever makes it (`save()`, a bulk `update()`, a migration, psql). Changes to
the user's daily counters and to a key's `last_used_at`, which every request makes, send none:
the counters are not kept (read from the database when used), and a key's last use is noted on
the kept copy by the process that writes it (so each process writes it at most once a minute).
Each web process listens on its own connection, in a thread, and drops the keys of the user
named (every key, for a tier) as the notification arrives, milliseconds after the change
commits; `key_cache_sync()` waits until every change committed before it has been applied.

Kept keys are served only while notifications are seen to arrive: the listener sends itself a
ping every PING_SECONDS and the cache is used only if it heard something in the last
SILENCE_SECONDS (a hung connection, a pooler that does not pass notifications on, a server
that stopped answering: keys are looked up meanwhile). It also checks that the triggers exist
before it listens. A kept key is looked up anew after KEPT_SECONDS whatever it heard. A key
read inside a transaction (or with autocommit off) is not kept, nor one whose lookup raced a
notification. API_KEY_CACHE=False turns it off. Triggers do not fire under
`session_replication_role = replica` (pg_restore --disable-triggers): restart the web after such
a load, or wait KEPT_SECONDS.

Copies are made without `Model.__init__`: the models here have no `post_init` receivers.
"""

import logging
import os
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
TRIGGERS = (
    "users_apikey_key_cache_update",
    "users_apikey_key_cache_delete",
    "users_apikey_key_cache_truncate",
    "users_user_key_cache_update",
    "users_user_key_cache_delete",
    "users_user_key_cache_truncate",
    "users_tier_key_cache",
)
MAX_KEYS = 10_000  # kept keys per process; past it the older half is dropped
KEPT_SECONDS = 60.0  # a kept key is looked up anew after this long, whatever was heard
PING_SECONDS = 5.0  # the listener pings itself through the channel this often...
SILENCE_SECONDS = 15.0  # ... and kept keys are served only if it heard something this recently
# The user's fields that change on every request (daily counters): never kept, read when used.
USER_COUNTERS = ("requests_today", "tokens_today", "usage_date")
# The listener's connection notices a dead peer within about 20 s (TCP keepalives).
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 5, "keepalives_count": 3}


class _Kept:
    __slots__ = ("api_key", "kept_at")

    def __init__(self, api_key: ApiKey, kept_at: float) -> None:
        self.api_key, self.kept_at = api_key, kept_at


_lock = threading.Lock()
_seen = threading.Condition(_lock)
_keys: dict[str, _Kept] = {}  # key hash -> the key as loaded, its user and tier attached
_by_user: dict[str, set[str]] = {}  # user id (text) -> the hashes of their kept keys
_generation = 0  # moves on every change notified and every reset: a lookup that raced one is not kept
_resets = 0  # moves each time the cache is emptied because listening started or stopped
_listening = False
_heard_at = 0.0  # monotonic time of the last notification received (pings included)
_listener: threading.Thread | None = None
_stop: threading.Event = threading.Event()  # the running listener's own
_waiting: set[str] = set()  # `key_cache_sync` markers waited for in this process
_arrived: set[str] = set()  # ... and those of them that came back


def api_key_get(key_hash: str) -> ApiKey | None:
    """The live key with this hash, its `user` and the user's `tier` loaded: a kept one's copies,
    or looked up (`users.authentication.api_key_lookup`) and kept for the next request."""
    from users.authentication import api_key_lookup

    if not settings.API_KEY_CACHE:
        return api_key_lookup(key_hash)
    _listener_ensure()
    now = time.monotonic()
    trusted = is_listening()
    kept = _keys.get(key_hash)
    if kept is not None and trusted and now - kept.kept_at < KEPT_SECONDS:
        return _key_copy(kept.api_key)
    db = connections[DEFAULT_DB_ALIAS]
    generation = _generation
    api_key = api_key_lookup(key_hash)
    if api_key is None or not trusted or db.in_atomic_block or not db.get_autocommit():
        return api_key  # not kept: maybe a change of this transaction's own, not committed
    copy = _key_copy(api_key, without=USER_COUNTERS)
    with _lock:
        if _listening and _generation == generation:  # no change notified since the lookup began
            _store(key_hash, _Kept(copy, now))
    return api_key


def api_key_used(key_hash: str, api_key: ApiKey) -> None:
    """Note a key's `last_used_at` on its kept copy (that column's changes are not notified)."""
    kept = _keys.get(key_hash)
    if kept is not None and kept.api_key.pk == api_key.pk:
        kept.api_key.last_used_at = api_key.last_used_at


def key_cache_sync(timeout: float = 5.0) -> bool:
    """Wait until every change committed before this call has dropped the keys it concerns
    (a marker sent on the channel after them comes back, or the cache was emptied meanwhile).

    False if that did not happen in time, and inside a transaction, where the marker would
    only go out at its commit.
    """
    if not settings.API_KEY_CACHE or not _listening:
        return True  # nothing is served from the cache
    db = connections[DEFAULT_DB_ALIAS]
    if db.in_atomic_block or not db.get_autocommit():
        return False
    marker = f"sync:{uuid.uuid4().hex}"
    resets = _resets
    with _lock:
        _waiting.add(marker)
    try:
        _notify(marker)
        deadline = time.monotonic() + timeout
        with _seen:
            while marker not in _arrived and _resets == resets:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                _seen.wait(left)
        return True
    finally:
        with _lock:
            _waiting.discard(marker)
            _arrived.discard(marker)


def key_cache_stop(timeout: float = 5.0) -> bool:
    """Stop listening and empty the cache (before the database is dropped, say); True once the
    thread is gone. The next lookup starts listening again."""
    global _listener
    listener = _listener
    if listener is None or not listener.is_alive():
        return True
    _stop.set()
    try:
        _notify("stop")  # wakes the thread now; it also stops within PING_SECONDS without it
    except Exception as exc:  # the database is gone already, and the connection with it
        logger.warning("API key cache: could not wake the listener to stop: %s", exc)
    listener.join(timeout)
    if listener.is_alive():
        return False  # it stops when it wakes; no second one starts meanwhile
    _listener = None
    return True


def kept_keys() -> int:
    """How many keys this process keeps (for tests and the curious)."""
    return len(_keys)


def is_listening() -> bool:
    """Whether kept keys are served: listening, and notifications seen to arrive."""
    return _listening and time.monotonic() - _heard_at < SILENCE_SECONDS


def _notify(payload: str) -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])


# The kept keys (every change under _lock) --------------------------------------------------------


def _store(key_hash: str, kept: _Kept) -> None:
    if len(_keys) >= MAX_KEYS:
        for old in list(_keys)[: MAX_KEYS // 2]:  # the oldest kept half
            _drop(old)
    _drop(key_hash)
    _keys[key_hash] = kept
    _by_user.setdefault(str(kept.api_key.user_id), set()).add(key_hash)


def _drop(key_hash: str) -> None:
    kept = _keys.pop(key_hash, None)
    if kept is not None:
        hashes = _by_user.get(str(kept.api_key.user_id))
        if hashes is not None:
            hashes.discard(key_hash)
            if not hashes:
                del _by_user[str(kept.api_key.user_id)]


def _clear() -> None:
    _keys.clear()
    _by_user.clear()


# Copies -----------------------------------------------------------------------------------------


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
    global _listener, _stop
    if _listener is not None and _listener.is_alive():
        return
    with _lock:
        if _listener is None or not _listener.is_alive():
            _stop = threading.Event()
            _listener = threading.Thread(target=_listen_forever, args=(_stop,), name=LISTENER_NAME, daemon=True)
            _listener.start()


def _set_listening(listening: bool) -> None:
    global _listening, _generation, _resets, _heard_at
    with _lock:
        _clear()
        _generation += 1
        _resets += 1
        _listening = listening
        _heard_at = time.monotonic() if listening else 0.0
        _seen.notify_all()


def _apply(payload: str) -> None:
    global _generation, _heard_at
    with _lock:
        _heard_at = time.monotonic()
        if payload.startswith("sync:"):
            if payload in _waiting:
                _arrived.add(payload)
                _seen.notify_all()
            return
        if payload.startswith("ping:") or payload == "stop":
            return
        _generation += 1
        if payload == ALL:
            _clear()
        else:
            for key_hash in list(_by_user.get(payload, ())):
                _drop(key_hash)


def _listen_forever(stop: threading.Event) -> None:
    pause = 0.5
    while not stop.is_set():
        try:
            params = connections[DEFAULT_DB_ALIAS].get_connection_params()
            params.pop("cursor_factory", None)
            params.update(_KEEPALIVES, application_name=LISTENER_NAME, connect_timeout=10)
            with psycopg.connect(**params, autocommit=True) as listener:
                missing = set(TRIGGERS) - {
                    name
                    for (name,) in listener.execute(
                        "SELECT tgname FROM pg_trigger WHERE tgname = ANY(%s)", [list(TRIGGERS)]
                    )
                }
                if missing:
                    raise RuntimeError(f"triggers missing (migrate users): {', '.join(sorted(missing))}")
                listener.execute(f"LISTEN {CHANNEL}")
                _set_listening(True)
                pause = 0.5
                _listen(listener, stop)
        except Exception as exc:  # psycopg raises several kinds; any of them ends the listening
            logger.warning("API key cache: not listening for changes (%s); keys are looked up meanwhile", exc)
        finally:
            _set_listening(False)
        stop.wait(pause)
        pause = min(pause * 2, 30)


def _listen(listener: psycopg.Connection[Any], stop: threading.Event) -> None:
    """Apply notifications as they come, and ping through the channel every PING_SECONDS
    (a ping that does not come back leaves the cache unused, see `is_listening`)."""
    ping = f"ping:{os.getpid()}"
    while not stop.is_set():
        listener.execute("SELECT pg_notify(%s, %s)", [CHANNEL, ping])
        for notify in listener.notifies(timeout=PING_SECONDS):
            if stop.is_set():
                return
            _apply(notify.payload)


def _forget_after_fork() -> None:
    """A forked process has no listening thread: it starts with an empty cache and its own."""
    global _listener, _listening, _generation, _lock, _seen, _stop, _heard_at
    _lock = threading.Lock()
    _seen = threading.Condition(_lock)
    _stop = threading.Event()
    _clear()
    _waiting.clear()
    _arrived.clear()
    _listener, _listening, _heard_at, _generation = None, False, 0.0, _generation + 1


os.register_at_fork(after_in_child=_forget_after_fork)
