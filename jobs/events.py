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


def sent_key(task_id: Any) -> str:
    """Notes that a record's message went to the broker (kept beside the messages, in the broker's Redis)."""
    return f"jobs:sent:{task_id}"


def sent_note_ttl() -> int:
    """Seconds a send noted in Redis is kept: half the visibility timeout, after which the sweeper
    sends a record still QUEUED again anyway (about 90 bytes a released record meanwhile)."""
    return settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] // 2


def events_publish(events: list[tuple[Any, dict[str, Any]]], *, sent: tuple[Any, ...] = ()) -> None:
    """Append events of one or more tasks to their streams in one round trip, in this order;
    and note that the records `sent` were sent (`sent_key`), in the same round trip."""
    keys, args = [], []
    for task_id, fields in events:
        event = {k: v for k, v in fields.items() if k in _PUBLISHED_FIELDS}
        if event:
            ttl = FINAL_STREAM_TTL_SECONDS if event.get("state") in FINAL_STATES else STREAM_TTL_SECONDS
            keys.append(stream_key(task_id))
            args += [json.dumps(event, default=str), ttl]
    streams = len(keys)
    keys += [sent_key(task_id) for task_id in sent]
    if not keys:
        return
    try:
        _publish_script()(keys=keys, args=[STREAM_MAX_EVENTS, NOTIFY_CHANNEL, streams, sent_note_ttl(), *args])
    except Exception as exc:
        logger.warning("events for tasks %s not published: %s", [task_id for task_id, _ in events], exc)


def sent_marked(task_ids: list[Any]) -> set[str]:
    """Which of `task_ids` have a send noted in Redis (as strings)."""
    if not task_ids:
        return set()
    values = events_redis().mget([sent_key(task_id) for task_id in task_ids])
    return {str(task_id) for task_id, value in zip(task_ids, values, strict=True) if value is not None}


# Append, expire and announce each event in one atomic step: a notice follows its entry, in the
# streams' order; then set the sent notes. KEYS: the streams, then the sent notes; ARGV: max
# length, channel, how many streams, the notes' ttl, then (data, ttl) per stream.
PUBLISH_LUA = """
local streams = tonumber(ARGV[3])
for i = 1, streams do
    local key, data = KEYS[i], ARGV[3 + 2 * i]
    local id = redis.call('XADD', key, 'MAXLEN', '~', ARGV[1], '*', 'data', data)
    redis.call('EXPIRE', key, ARGV[4 + 2 * i])
    redis.call('PUBLISH', ARGV[2], key .. ' ' .. id .. ' ' .. data)
end
for i = streams + 1, #KEYS do
    redis.call('SET', KEYS[i], '1', 'EX', ARGV[4])
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
