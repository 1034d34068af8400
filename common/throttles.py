"""Request-rate limits kept in the shared cache (Redis), so every web process counts together.

Each limit is a counter per user (or address) whose window opens with its first request and
lasts the rate's period. Like every fixed window, it lets up to twice the rate through across
the edge of two windows; the daily limits are what bound real use.

A process takes a user's requests from the counter a few at a time (a lease): one Redis script
counts up to `API_THROTTLE_LEASE_MAX` requests at once, at most a 128th of the limit and an
eighth of what is left in the window (so one at a time under 256 a window, and in a window's
last 16), and the process admits that many of the user's requests without asking again, until
the window ends. So a busy user costs one round trip every few requests, and a user near the
limit one a request, exactly as without leases. Nothing is admitted past the limit while Redis
keeps the counter (a counter Redis loses, to a restart or eviction, starts over, as it did
without leases; a lease then admits what it holds). What a process leased and did not use is
lost to that window: at most a 128th of the limit per process, whichever processes a user's
requests reach. `API_THROTTLE_LEASE_MAX=1` counts every request in Redis.

If the cache is unreachable the limits let requests through: accepting work while Redis is
down is a promise (the dispatch path records it for later), and a rate limit must not break it.
"""

import logging
import math
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
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


# Counts requests in the window KEYS[1] (ARGV[1] seconds, ARGV[2] allowed): as many as ARGV[3],
# at most ARGV[2] / ARGV[4] and an eighth of those left, at least one; a counter with no expiry
# (the window's first request, or one left without) gets the window's. Returns the count, the
# window's milliseconds left and how many were counted.
_TAKE = """
local allowed = tonumber(ARGV[2])
local left = allowed - tonumber(redis.call('GET', KEYS[1]) or '0')
local taken = math.max(1, math.min(tonumber(ARGV[3]), math.floor(allowed / tonumber(ARGV[4])), math.floor(left / 8)))
local count = redis.call('INCRBY', KEYS[1], taken)
local ms = redis.call('PTTL', KEYS[1])
if ms < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
    ms = tonumber(ARGV[1]) * 1000
end
return {count, ms, taken}
"""

_client: Redis | None = None
_count: Any = None


def _redis() -> Redis:
    """One client per process on the cache's Redis (Django's cache builds a new client per call)."""
    global _client
    if _client is None:
        _client = Redis.from_url(settings.CACHES["default"]["LOCATION"], socket_timeout=5)
    return _client


LEASE_SHARE = 128  # a lease is at most this fraction of the limit (1/128)


def _take(key: str, seconds: int, allowed: int, most: int) -> tuple[int, int, int]:
    """Count up to `most` requests in the window `key` (`_TAKE`): (count, milliseconds left, counted)."""
    global _count
    if _count is None:
        _count = _redis().register_script(_TAKE)  # EVALSHA, loaded again if Redis forgot it
    count, ms, taken = _count(keys=[key], args=[seconds, allowed, most, LEASE_SHARE])
    return int(count), int(ms), int(taken)


# What this process leased and has not used yet: (window key, allowed, seconds) -> [requests
# left, monotonic time the window ends]. Ended windows are dropped each time the table has
# doubled since the last time (so a flood of new keys costs no scan per request).
_leases: dict[tuple[str, int, int], list] = {}
_leases_lock = threading.Lock()
_LEASES_KEPT = 4096
_sweep_at = _LEASES_KEPT
_MARGIN = 0.05  # seconds: a lease ends this much before Redis's window, never after


def _lease_use(lease_key: tuple[str, int, int]) -> bool:
    """Admit one request from this process's lease for the window, if it holds one."""
    with _leases_lock:
        lease = _leases.get(lease_key)
        if lease is None or lease[0] <= 0 or lease[1] <= time.monotonic():
            return False
        lease[0] -= 1
        return True


def _lease_keep(lease_key: tuple[str, int, int], requests: int, ends_at: float) -> None:
    global _sweep_at
    with _leases_lock:
        now = time.monotonic()
        lease = _leases.get(lease_key)
        if lease is not None and lease[1] > now:
            lease[0] += requests  # the same window, leased by two requests at once
            lease[1] = min(lease[1], ends_at)
            return
        if len(_leases) >= _sweep_at:
            for old in [k for k, (_, end) in _leases.items() if end <= now]:
                del _leases[old]
            _sweep_at = max(_LEASES_KEPT, 2 * len(_leases))
        _leases[lease_key] = [requests, ends_at]


def leases_clear() -> None:
    """Forget this process's leases (tests, after changing what a window allows)."""
    with _leases_lock:
        _leases.clear()


_cache_key = None


def _window_key(key: str) -> str:
    """The counter's key in the cache, as the cache names keys (its prefix and version)."""
    global _cache_key
    if _cache_key is None:  # the process's own cache object: `cache` is made again for each request
        _cache_key = caches.create_connection(DEFAULT_CACHE_ALIAS).make_key
    return _cache_key(f"{key}:count")  # not the list DRF's own throttles kept under `key`


class _WindowCounter:
    """Counts requests in a window that opens with the first one (see the module's docstring)."""

    rate: str | None
    num_requests: int
    duration: int

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)  # type: ignore[attr-defined]
        if key is None:
            return True
        key = _window_key(key)
        lease_key = (key, self.num_requests, self.duration)
        if _lease_use(lease_key):
            return True
        now = time.monotonic()
        count, ms, taken = _take(key, self.duration, self.num_requests, max(1, settings.API_THROTTLE_LEASE_MAX))
        admitted = min(taken, self.num_requests - (count - taken))  # of those counted, the ones within the limit
        if admitted <= 0:
            self.seconds_left = ms / 1000
            return False
        if admitted > 1:
            _lease_keep(lease_key, admitted - 1, now + ms / 1000 - _MARGIN)
        return True

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
