"""Request-rate limits kept in the shared cache (Redis), so every web process counts together.

Each limit is a counter per user (or address) whose window opens with its first request and
lasts the rate's period: one Redis command per request (a script: INCR, and EXPIRE when the
window opens), where DRF's own throttles read and rewrite a list of timestamps (two round
trips, and a list as long as the rate). Like every fixed window, it lets up to twice the rate
through across the edge of two windows; the daily limits are what bound real use.

If the cache is unreachable the limits let requests through: accepting work while Redis is
down is a promise (the dispatch path records it for later), and a rate limit must not break it.
"""

import logging
import math
from typing import Any

from django.conf import settings
from django.core.cache import cache
from redis import Redis
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)


class _FailOpen:
    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except Exception as exc:  # the cache (Redis) is down
            logger.warning("rate limit not checked, cache unavailable: %s", exc)
            return True


# Counts a request in the window KEYS[1]; a counter with no expiry (the window's first request,
# or one left without) gets ARGV[1] seconds. Returns the count and the seconds left.
_COUNT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

_client: Redis | None = None
_count: Any = None


def _redis() -> Redis:
    """One client per process on the cache's Redis (Django's cache builds a new client per call)."""
    global _client
    if _client is None:
        _client = Redis.from_url(settings.CACHES["default"]["LOCATION"], socket_timeout=5)
    return _client


def _count_request(key: str, seconds: int) -> tuple[int, int]:
    """Count one request in the window `key` of `seconds`: (requests in it so far, seconds left)."""
    global _count
    if _count is None:
        _count = _redis().register_script(_COUNT)  # EVALSHA, loaded again if Redis forgot it
    count, ttl = _count(keys=[key], args=[seconds])
    return int(count), int(ttl)


class _WindowCounter:
    """Counts requests in a window that opens with the first one (one Redis round trip)."""

    rate: str | None
    num_requests: int
    duration: int

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)  # type: ignore[attr-defined]
        if key is None:
            return True
        key = cache.make_key(f"{key}:count")  # not the list DRF's own throttles kept under `key`
        count, ttl = _count_request(key, self.duration)
        self.seconds_left = ttl if ttl >= 0 else self.duration  # 0 in a window's last half second: wait 1 s
        return count <= self.num_requests

    def wait(self) -> float:
        return max(1, math.ceil(self.seconds_left))


class UserRate(_FailOpen, _WindowCounter, UserRateThrottle):
    """Requests per authenticated user, on top of the daily limits (API_USER_THROTTLE_RATE)."""

    def get_rate(self) -> str:
        return settings.API_USER_THROTTLE_RATE


class AnonRate(_FailOpen, _WindowCounter, AnonRateThrottle):
    """Requests per client address without credentials (API_ANON_THROTTLE_RATE)."""

    def get_rate(self) -> str:
        return settings.API_ANON_THROTTLE_RATE
