"""Publishing task events: every change of a record's state or progress, once, to Redis.

One stream per task (`jobs:events:<task_id>`), capped and expiring, so a listener that comes
late or reconnects (SSE `Last-Event-ID` = the stream entry id) misses nothing that matters.
In the same step (one Lua script, one round trip) the new entry is published on
`NOTIFY_CHANNEL` as `<key> <entry id> <data>`, so the web processes' open streams
(`jobs/fanout.py`) get it without reading the stream; the stream stays the record they fall back on.
"""

import json
import logging
from typing import Any

from django.conf import settings
from redis import Redis

logger = logging.getLogger(__name__)

STREAM_MAX_EVENTS = 200
STREAM_TTL_SECONDS = 24 * 3600  # while the task runs
FINAL_STREAM_TTL_SECONDS = 3600  # after its final state: long enough for any client to reconnect
FINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED"}
NOTIFY_CHANNEL = "jobs:events:new"
_client: Redis | None = None


def events_redis() -> Redis:
    """One client per process (redis-py clients are thread-safe)."""
    global _client
    if _client is None:
        _client = Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)
    return _client


def stream_key(task_id: Any) -> str:
    return f"jobs:events:{task_id}"


def event_publish(task_id: Any, fields: dict[str, Any]) -> None:
    """Append one event to the task's stream; publishing never breaks the work itself."""
    events_publish([(task_id, fields)])


def events_publish(events: list[tuple[Any, dict[str, Any]]], *, forget: tuple[str, ...] = ()) -> None:
    """Append events of one or more tasks to their streams in one round trip, in this order;
    and delete the keys `forget` in the same round trip."""
    keys, args = [], []
    for task_id, fields in events:
        event = {k: v for k, v in fields.items() if k in _PUBLISHED_FIELDS}
        if event:
            ttl = FINAL_STREAM_TTL_SECONDS if event.get("state") in FINAL_STATES else STREAM_TTL_SECONDS
            keys.append(stream_key(task_id))
            args += [json.dumps(event, default=str), ttl]
    streams = len(keys)
    keys += forget
    if not keys:
        return
    try:
        _publish_script()(keys=keys, args=[STREAM_MAX_EVENTS, NOTIFY_CHANNEL, streams, *args])
    except Exception as exc:
        logger.warning("events for tasks %s not published: %s", [task_id for task_id, _ in events], exc)


# Append, expire and announce each event in one atomic step: a notice follows its entry, in the
# streams' order; then delete the other keys. KEYS: the streams, then the keys to delete; ARGV:
# max length, channel, how many streams, then (data, ttl) per stream.
PUBLISH_LUA = """
local streams = tonumber(ARGV[3])
for i = 1, streams do
    local key, data = KEYS[i], ARGV[2 + 2 * i]
    local id = redis.call('XADD', key, 'MAXLEN', '~', ARGV[1], '*', 'data', data)
    redis.call('EXPIRE', key, ARGV[3 + 2 * i])
    redis.call('PUBLISH', ARGV[2], key .. ' ' .. id .. ' ' .. data)
end
for i = streams + 1, #KEYS do
    redis.call('DEL', KEYS[i])
end
return streams
"""
_script: Any = None


def _publish_script() -> Any:
    global _script
    if _script is None:
        _script = events_redis().register_script(PUBLISH_LUA)  # EVALSHA, loaded again after a Redis restart
    return _script


def events_read(task_id: Any, after: str = "0") -> list[tuple[str, dict[str, Any]]]:
    """The task's events after stream id `after`, oldest first, as (id, event)."""
    entries = events_redis().xrange(stream_key(task_id), min=f"({after}" if after != "0" else "-")
    return [(entry_id.decode(), json.loads(values[b"data"])) for entry_id, values in entries]


_PUBLISHED_FIELDS = {"state", "progress_percent", "progress_message", "error", "result", "partial_text"}
