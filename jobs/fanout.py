"""Following task events in a web process: one Redis subscription feeds every open stream.

Whoever publishes an event (`jobs.events.event_publish`) appends it to the task's stream and, in
the same atomic step, publishes `<key> <entry id> <data>` on one channel (`NOTIFY_CHANNEL`). Each
web process (each event loop) has one `StreamWaker`: a single pub/sub connection that hands each
entry to the streams following its key, and a small shared pool for the reads. A follower reads
the stream itself (`XRANGE` after its cursor) when it starts, after the subscription was
re-established, and whenever a wait ends without a notice, so a lost notice costs at most one
wait, never an event; in between, events cost no Redis command at all. Open streams hold no Redis
connection each (the first design held one each, blocked in XREAD), so a process holds as many
streams as it has file descriptors for, one per client.
"""

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from jobs.events import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

# Reads are short (XRANGE, XREVRANGE) and rare (a stream's start, a keep-alive); a burst of them
# waits for one of these connections instead of opening one per stream.
READ_CONNECTIONS = 16
READ_COUNT = 100
RECONNECT_SECONDS = 1.0
SUBSCRIBE_WAIT_SECONDS = 5.0
_wakers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamWaker]" = weakref.WeakKeyDictionary()

Entry = tuple[str, bytes]  # (stream entry id, the event's JSON)


def _id_key(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class Follower:
    """One open stream's side: the entries its notices brought, and whether it must read the stream."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis, self.key = redis, key
        self.pending: list[Entry] = []
        self.must_read = True  # the first call reads: entries may have come before the notices were heard
        self.woken = asyncio.Event()
        self.woken.set()

    def deliver(self, entry: Entry) -> None:
        self.pending.append(entry)
        self.woken.set()

    def resync(self) -> None:
        self.must_read = True
        self.woken.set()

    async def entries_after(self, cursor: str, *, timeout: float) -> list[Entry]:
        """The entries after `cursor`, oldest first, waiting up to `timeout` seconds for one; [] if none came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not self.woken.is_set():
                try:
                    await asyncio.wait_for(self.woken.wait(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    self.must_read = True  # read all the same: a notice may have been lost
            self.woken.clear()
            if self.must_read:
                self.must_read = False
                read = await self.redis.xrange(self.key, min="-" if cursor == "0-0" else f"({cursor}", count=READ_COUNT)
                entries = [(entry_id.decode(), values[b"data"]) for entry_id, values in read]
                self.must_read = len(read) == READ_COUNT  # more than one read's worth: read on next call
            else:
                entries = []
            if self.must_read:  # the stream has more than was read: the notices wait until it is read up
                self.woken.set()
            else:
                last = _id_key(entries[-1][0] if entries else cursor)
                entries += [entry for entry in self.pending if _id_key(entry[0]) > last]  # not read, not seen
                self.pending = []
            if entries or loop.time() >= deadline:
                return entries


class StreamWaker:
    """The event streams of one event loop: who follows which key, one subscription that feeds them."""

    def __init__(self, url: str) -> None:
        # Pooled connections outlive a Redis restart; a command on a dead one reconnects and retries.
        pool = BlockingConnectionPool.from_url(
            url, max_connections=READ_CONNECTIONS, timeout=30, socket_timeout=10, retry=Retry(ExponentialBackoff(), 3)
        )
        self.redis = Redis(connection_pool=pool)
        self._url = url
        self._followers: dict[str, set[Follower]] = {}
        self._subscribed = asyncio.Event()
        self._listener: asyncio.Task | None = None

    @contextlib.asynccontextmanager
    async def follow(self, key: str) -> AsyncIterator[Follower]:
        """Receive the entries of stream `key` while the block runs (an open stream's whole life)."""
        await self._listening()
        follower = Follower(self.redis, key)
        self._followers.setdefault(key, set()).add(follower)
        try:
            yield follower
        finally:
            following = self._followers.get(key)
            if following is not None:
                following.discard(follower)
                if not following:
                    del self._followers[key]

    async def _listening(self) -> None:
        """Start the subscription once; wait (briefly) until it is in place, so no notice falls before it."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        if not self._subscribed.is_set():
            try:
                await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_WAIT_SECONDS)
            except TimeoutError:  # Redis unreachable: followers still read at every wait's end
                logger.warning("task events: not subscribed to %s yet; streams poll meanwhile", NOTIFY_CHANNEL)

    async def _listen(self) -> None:
        """Hand published entries to their followers for the life of the event loop; reconnect on errors."""
        while True:
            client = Redis.from_url(self._url, socket_connect_timeout=5, socket_keepalive=True)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(NOTIFY_CHANNEL)
                self._subscribed.set()
                self._resync_all()  # whatever was published while (re)connecting is read now
                while True:
                    message = await pubsub.get_message(timeout=30)
                    if message is None:
                        await pubsub.ping()  # a dead connection shows here rather than never
                    elif message.get("type") == "message":
                        self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._subscribed.clear()
                logger.warning("task events: subscription to %s lost (%s); reconnecting", NOTIFY_CHANNEL, exc)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                await pubsub.aclose()
                await client.aclose()

    def _deliver(self, notice: bytes) -> None:
        key, entry_id, data = notice.split(b" ", 2)
        for follower in self._followers.get(key.decode(), ()):
            follower.deliver((entry_id.decode(), data))

    def _resync_all(self) -> None:
        for following in self._followers.values():
            for follower in following:
                follower.resync()


def stream_waker() -> StreamWaker:
    """The waker of the running event loop (one per process under uvicorn), made on first use."""
    loop = asyncio.get_running_loop()
    waker = _wakers.get(loop)
    if waker is None:
        waker = _wakers[loop] = StreamWaker(settings.CELERY_BROKER_URL)
    return waker
