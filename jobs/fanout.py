"""Waiting for task events in a web process: one Redis subscription wakes every open stream.

Whoever publishes an event (`jobs.events.event_publish`) appends it to the task's stream and then
publishes the stream's key on one channel (`NOTIFY_CHANNEL`). Each web process (each event loop)
has one `StreamWaker`: a single pub/sub connection that hears those keys and wakes the streams
waiting on them, and a small shared pool for the reads. A stream reads its entries itself with
`XRANGE` after its own cursor, so the stream, not the notice, stays the source of truth: a lost
notice (a reconnect, a publisher of an older release) costs a delay of at most one wait, never an
event. Open streams thus hold no Redis connection each (before: one each, blocked in XREAD), so one
process holds as many streams as it has file descriptors for, one per client.
"""

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis

from jobs.events import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

# Reads are short (XRANGE, XREVRANGE); this many at once is plenty for hundreds of streams, and a
# burst waits for a free connection instead of opening one per stream.
READ_CONNECTIONS = 16
RECONNECT_SECONDS = 1.0
SUBSCRIBE_WAIT_SECONDS = 5.0
_wakers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamWaker]" = weakref.WeakKeyDictionary()


class StreamWaker:
    """The event streams of one event loop: who waits on which key, one subscription that wakes them."""

    def __init__(self, url: str) -> None:
        options = {"socket_connect_timeout": 5, "socket_keepalive": True}
        pool = BlockingConnectionPool.from_url(url, max_connections=READ_CONNECTIONS, timeout=30, socket_timeout=10)
        self.redis = Redis(connection_pool=pool)
        self._url, self._options = url, options
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._subscribed = asyncio.Event()
        self._listener: asyncio.Task | None = None

    @contextlib.asynccontextmanager
    async def follow(self, key: str) -> AsyncIterator["Follower"]:
        """Listen for notices about stream `key` while the block runs (a stream's whole life)."""
        await self._listening()
        follower = Follower(self.redis, key)
        self._waiters.setdefault(key, set()).add(follower.woken)
        try:
            yield follower
        finally:
            waiting = self._waiters.get(key)
            if waiting is not None:
                waiting.discard(follower.woken)
                if not waiting:
                    del self._waiters[key]

    async def _listening(self) -> None:
        """Start the subscription once; wait (briefly) until it is in place, so no notice falls before it."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        if not self._subscribed.is_set():
            try:
                await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_WAIT_SECONDS)
            except TimeoutError:  # Redis unreachable: streams still read on every wait's timeout
                logger.warning("task events: not subscribed to %s yet; streams poll meanwhile", NOTIFY_CHANNEL)

    async def _listen(self) -> None:
        """Hear published keys and wake their waiters, for the life of the event loop; reconnect on errors."""
        while True:
            client = Redis.from_url(self._url, **self._options)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(NOTIFY_CHANNEL)
                self._subscribed.set()
                self._wake_all()  # whatever was published while (re)connecting is read now
                while True:
                    message = await pubsub.get_message(timeout=30)
                    if message is None:
                        await pubsub.ping()  # a dead connection shows here rather than never
                        continue
                    if message.get("type") == "message":
                        self._wake(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._subscribed.clear()
                logger.warning("task events: subscription to %s lost (%s); reconnecting", NOTIFY_CHANNEL, exc)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                await pubsub.aclose()
                await client.aclose()

    def _wake(self, key: str) -> None:
        for woken in self._waiters.get(key, ()):
            woken.set()

    def _wake_all(self) -> None:
        for waiting in self._waiters.values():
            for woken in waiting:
                woken.set()


class Follower:
    """One open stream's side of the waker: reads its key's entries when a notice (or the first call) says so."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis, self.key = redis, key
        self.woken = asyncio.Event()
        self.woken.set()  # the first call reads: entries may have come before the notices were heard

    async def entries_after(self, cursor: str, *, timeout: float) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """The entries after `cursor`, waiting up to `timeout` seconds for one; [] if none came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not self.woken.is_set():
                # On timeout the stream is read all the same: a lost notice costs one wait, never an event.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.woken.wait(), max(0.0, deadline - loop.time()))
            # Cleared before the read: a notice that arrives during the read, or while the caller
            # sends what it got, means "read again" at the next call.
            self.woken.clear()
            entries = await self.redis.xrange(self.key, min="-" if cursor == "0-0" else f"({cursor}", count=100)
            if entries or loop.time() >= deadline:
                return entries


def stream_waker() -> StreamWaker:
    """The waker of the running event loop (one per process under uvicorn), made on first use."""
    loop = asyncio.get_running_loop()
    waker = _wakers.get(loop)
    if waker is None:
        waker = _wakers[loop] = StreamWaker(settings.CELERY_BROKER_URL)
    return waker
