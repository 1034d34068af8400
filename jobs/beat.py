"""A database scheduler that lets only one beat send, however many were started.

Every beat keeps a lock in Redis fresh while it holds it; a second beat started by mistake
finds the lock taken and sends nothing, waiting as a standby that takes over within
BEAT_LOCK_SECONDS if the first one dies. Each tick of the holder is stamped in Redis, which
the health endpoint and the operations page read as "beat's last tick".
"""

import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler
from redis import Redis

logger = logging.getLogger(__name__)

LOCK_KEY = "jobs:beat:lock"
LAST_TICK_KEY = "jobs:beat:last_tick"

# Take the lock if it is free, renew it if it is ours, and then stamp the tick; otherwise leave
# both. One round trip per tick: with many due tasks beat ticks hundreds of times a second.
_ACQUIRE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
    return 0
end
redis.call('SET', KEYS[2], ARGV[3])
return 1
"""


def beat_redis() -> Redis:
    """The Redis that holds the beat lock and last tick (the broker's)."""
    return Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)


class LockedDatabaseScheduler(DatabaseScheduler):
    """django-celery-beat's DatabaseScheduler, sending only while it holds the beat lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._token = uuid.uuid4().hex
        self._redis = beat_redis()
        self._acquire = self._redis.register_script(_ACQUIRE_OR_RENEW)
        self._holding = False
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        lock_ms = int(settings.BEAT_LOCK_SECONDS * 1000)
        try:
            holding = bool(self._acquire(keys=[LOCK_KEY, LAST_TICK_KEY], args=[self._token, lock_ms, time.time()]))
        except Exception as exc:  # Redis down: sending is impossible anyway
            logger.warning("beat lock unavailable: %s", exc)
            return self.max_interval
        if holding != self._holding:
            logger.info("beat %s the lock", "took" if holding else "lost")
            self._holding = holding
        if not holding:
            return min(self.max_interval, settings.BEAT_LOCK_SECONDS / 3)
        return min(super().tick(*args, **kwargs), settings.BEAT_LOCK_SECONDS / 3)

    def close(self) -> None:
        super().close()
        try:  # hand over at once instead of after the lock's expiry
            if self._redis.get(LOCK_KEY) == self._token.encode():
                self._redis.delete(LOCK_KEY)
        except Exception:
            pass


def beat_last_tick() -> float | None:
    """Seconds since the epoch of the sending beat's last tick, or None if never."""
    try:
        value = beat_redis().get(LAST_TICK_KEY)
    except Exception:
        return None
    return float(value) if value else None
