"""Celery's Redis transport, keeping one Redis client per connection pool.

kombu's Redis channel (`kombu.transport.redis.Channel.conn_or_acquire`) builds a new
`redis.Redis` for every operation it does outside the worker's event loop: each publish, each
queue size, each acknowledgement. The connections come from the channel's pool either way; what
is rebuilt is the client object, which copies some 170 response callbacks and its retry settings
(about 0.2 ms of CPU, four times per prompt task and once per accepted request). A `redis.Redis`
on a pool is safe to share between threads (each command borrows a connection from the pool), so
this channel keeps one, and builds a new one only when the channel has a new pool (after it was
closed and reopened, e.g. when Redis came back after an outage).

It also notes a send in the round trip that makes it: a message published with the header
`SENT_NOTE_HEADER` (seconds) is pushed onto its queue and its note `sent_key(task id)` set for
that long by one Lua script, the note only if the push succeeded (`jobs.sending` says what the
notes are for; with another transport, such as `sentinel://`, it sets them itself, a round trip
more).

`config/celery.py` registers `Transport` under kombu's "redis" and "rediss" aliases, so broker
URLs keep their scheme: Flower and anything else that reads the URL sees a plain Redis broker.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

ALIASES = ("redis", "rediss")
logger = logging.getLogger(__name__)

# A message header asking for the send to be noted in Redis, for this many seconds.
SENT_NOTE_HEADER = "jobs_sent_note"

# Pushes the message (KEYS[1], ARGV[1]) and then notes the send (KEYS[2], for ARGV[2] seconds);
# an error pushing stops the script before the note.
_PUT_NOTED = """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
"""


def sent_key(task_id: Any) -> str:
    """A note that a record's message went to the broker, kept in the broker's Redis beside it."""
    return f"jobs:sent:{task_id}"


class Channel(kombu_redis.Channel):
    _kept_client: redis.Redis | None = None
    _put_noted: Any = None

    def _put(self, queue: str, message: dict, **kwargs: Any) -> None:
        """Deliver `message`, noting its send in the same round trip if its headers ask for it.

        The header itself is not delivered: a retry of the task (which copies its headers)
        would note a send again.
        """
        headers = message.get("headers") or {}
        seconds = headers.get(SENT_NOTE_HEADER)
        if not seconds:
            return super()._put(queue, message, **kwargs)
        task_id = headers.get("id") or message.get("properties", {}).get("correlation_id")
        # A copy: kombu publishes the same message again if this attempt fails.
        message = {**message, "headers": {k: v for k, v in headers.items() if k != SENT_NOTE_HEADER}}
        note, seconds = sent_key(task_id), int(seconds)
        batch = kwargs.get("_publish_batch")
        if batch is not None:  # the note joins the batch's pipeline, after the push
            super()._put(queue, message, **kwargs)
            batch.add("set", note, "1", seconds)
            return None
        with self.conn_or_acquire() as client:
            if self._expires and queue in self._expires:  # kombu's own push, which also sets expiries
                super()._put(queue, message, **kwargs)
                try:
                    client.set(note, "1", ex=seconds)
                except redis.RedisError as exc:  # pushed all the same; without the note the sweeper may resend
                    logger.warning("send of task %s not noted: %s", task_id, exc)
                return None
            if self._put_noted is None:
                self._put_noted = client.register_script(_PUT_NOTED)
            key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
            self._put_noted(keys=[key, note], args=[dumps(message), seconds], client=client)
        return None

    @contextmanager
    def conn_or_acquire(self, client: redis.Redis | None = None) -> Iterator[redis.Redis]:
        if client:
            yield client
            return
        kept = self._kept_client
        if kept is None or kept.connection_pool is not self.pool:
            kept = self._kept_client = self._create_client()
        yield kept


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    """Make redis:// and rediss:// broker URLs use this transport (before any connection resolves them)."""
    for alias in ALIASES:
        TRANSPORT_ALIASES[alias] = f"{__name__}:Transport"
