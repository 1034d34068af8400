"""Request-rate limits kept in the shared cache (Redis), so every web process counts together."""

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class UserRate(UserRateThrottle):
    """Requests per authenticated user, on top of the daily limits (API_USER_THROTTLE_RATE)."""

    def get_rate(self) -> str:
        return settings.API_USER_THROTTLE_RATE


class AnonRate(AnonRateThrottle):
    """Requests per client address without credentials (API_ANON_THROTTLE_RATE)."""

    def get_rate(self) -> str:
        return settings.API_ANON_THROTTLE_RATE
