"""Celery's Redis transport, keeping one Redis client per connection pool.

kombu's Redis channel (`kombu.transport.redis.Channel.conn_or_acquire`) builds a new
`redis.Redis` for every operation it does outside the worker's event loop: each publish, each
queue size, each acknowledgement. The connections come from the channel's pool either way; what
is rebuilt is the client object, which copies some 170 response callbacks and its retry settings
(about 0.2 ms of CPU, four times per prompt task and once per accepted request). A `redis.Redis`
on a pool is safe to share between threads (each command borrows a connection from the pool), so
this channel keeps one, and builds a new one only when the channel has a new pool (after it was
closed and reopened, e.g. when Redis came back after an outage).

`config/celery.py` registers `Transport` under kombu's "redis" and "rediss" aliases, so broker
URLs keep their scheme: Flower and anything else that reads the URL sees a plain Redis broker.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

ALIASES = ("redis", "rediss")


class Channel(kombu_redis.Channel):
    _kept_client: redis.Redis | None = None

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
