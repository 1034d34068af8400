"""Request-rate limits kept in the shared cache (Redis), so every web process counts together.

Each limit is a counter per user (or address) whose window opens with its first request and
lasts the rate's period: one Redis round trip per request (SET NX EX, INCR, TTL pipelined),
where DRF's own throttles read and rewrite a list of timestamps (two round trips, and a list
as long as the rate). Like every fixed window, it lets up to twice the rate through across
the edge of two windows; the daily limits are what bound real use.

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


_client: Redis | None = None


def _redis() -> Redis:
    """One client per process on the cache's Redis (Django's cache builds a new client per call)."""
    global _client
    if _client is None:
        _client = Redis.from_url(settings.CACHES["default"]["LOCATION"], socket_timeout=5)
    return _client


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
        pipe = _redis().pipeline(transaction=False)
        pipe.set(key, 0, ex=self.duration, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
        self.seconds_left = ttl if ttl and ttl > 0 else self.duration
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
