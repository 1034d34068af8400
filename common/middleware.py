"""Request ids (every request gets one, in its log lines and in its answer), and a busy database
answered as a 503 by the views outside the API."""

import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from common.api import DatabaseBusy, database_busy
from common.logs import REQUEST_ID_HEADER, log_context_bind, request_id_accept

logger = logging.getLogger("common.requests")


def _log_answer(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
    """One line per request (the access log, with the request id; uvicorn's own is turned off)."""
    duration_ms = round((time.monotonic() - started) * 1000)
    fields = {"method": request.method, "path": request.path, "status": response.status_code}
    logger.info("%s %s %s %sms", *fields.values(), duration_ms, extra={**fields, "duration_ms": duration_ms})


class RequestIdMiddleware:
    """Take X-Request-ID from the client or proxy if sane, else make one; bind it; echo it back.

    The id is bound for the rest of the request's context and not reset on the way out, so
    Django's own lines logged after the middleware chain ("Not Found: ...") carry it too; each
    request binds its own id first thing, so none inherits another's.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _bind(self, request: HttpRequest) -> str:
        request_id = request_id_accept(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        log_context_bind(request_id=request_id)
        return request_id

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if iscoroutinefunction(self):
            return self._acall(request)
        started = time.monotonic()
        request_id = self._bind(request)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        _log_answer(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        started = time.monotonic()
        request_id = self._bind(request)
        response = await self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        _log_answer(request, response, started)
        return response


class DatabaseBusyMiddleware(MiddlewareMixin):
    """A view outside the API (admin, dashboard, event streams) that waited DB_POOL_TIMEOUT for a
    pooled database connection answers 503 with Retry-After, as the API does, not a 500."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if not database_busy(exception):
            return None
        response = JsonResponse({"detail": str(DatabaseBusy.default_detail)}, status=DatabaseBusy.status_code)
        response["Retry-After"] = "1"
        return response
