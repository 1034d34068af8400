"""API key authentication: `Authorization: Token <key>` or `X-API-Key: <key>`."""

from django.conf import settings
from django.core.cache import cache
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from users.models import ApiKey, User
from users.services import api_key_hash, api_key_touch


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Looks the key up by its hash; a revoked key or inactive user is refused."""

    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        key = request.headers.get("X-API-Key", "").strip()
        if not key:
            header = request.headers.get("Authorization", "").split()
            if not header or header[0].lower() != self.keyword.lower():
                return None
            if len(header) != 2:
                raise exceptions.AuthenticationFailed("Invalid token header: expected 'Token <key>'.")
            key = header[1]
        try:
            api_key = ApiKey.objects.select_related("user", "user__tier").get(
                key_hash=api_key_hash(key), revoked_at__isnull=True
            )
        except ApiKey.DoesNotExist:
            _count_failure(request)
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        if not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        api_key_touch(api_key)
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated requests.
        return self.keyword


def _count_failure(request: Request) -> None:
    """Count a failed key per client address in the shared cache; too many in a minute is a 429."""
    key = f"auth-failures:{request.META.get('REMOTE_ADDR', '')}"
    try:
        cache.add(key, 0, timeout=60)
        failures = cache.incr(key)
    except Exception:  # the cache being down must not lock everyone out
        return
    if failures > settings.AUTH_FAILURES_PER_MINUTE:
        raise exceptions.Throttled(wait=60, detail="Too many failed authentications from this address; wait a minute.")
