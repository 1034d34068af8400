"""Request-rate limits kept in the shared cache (Redis), so every web process counts together.

If the cache is unreachable the limits let requests through: accepting work while Redis is
down is a promise (the dispatch path records it for later), and a rate limit must not break it.
"""

import logging
from typing import Any

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)


class _FailOpen:
    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except Exception as exc:  # the cache (Redis) is down
            logger.warning("rate limit not checked, cache unavailable: %s", exc)
            return True


class UserRate(_FailOpen, UserRateThrottle):
    """Requests per authenticated user, on top of the daily limits (API_USER_THROTTLE_RATE)."""

    def get_rate(self) -> str:
        return settings.API_USER_THROTTLE_RATE


class AnonRate(_FailOpen, AnonRateThrottle):
    """Requests per client address without credentials (API_ANON_THROTTLE_RATE)."""

    def get_rate(self) -> str:
        return settings.API_ANON_THROTTLE_RATE
