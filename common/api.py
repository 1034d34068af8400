"""API-wide pieces: pagination and the exception handler that keeps every error JSON."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import Http404
from psycopg_pool import PoolTimeout
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def database_busy(exc: BaseException) -> bool:
    """Whether `exc` is a request that waited DB_POOL_TIMEOUT for a pooled database connection."""
    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, PoolTimeout)


class DatabaseBusy(exceptions.APIException):
    """503: every pooled database connection stayed taken for DB_POOL_TIMEOUT seconds."""

    status_code = 503
    default_detail = "The service is busy; try again in a moment."
    default_code = "busy"


class Pagination(PageNumberPagination):
    """Page numbers with a client-chosen size, capped so no page is unbounded."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus domain validation errors (raised by services) as 400s, and a request
    that waited too long for a pooled database connection (DB_POOL_TIMEOUT) as a 503."""
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            exc = exceptions.ValidationError(exc.message_dict)
        else:
            exc = exceptions.ValidationError({"detail": exc.messages})
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif database_busy(exc):
        response = drf_exception_handler(DatabaseBusy(), context)
        response["Retry-After"] = "1"
        return response
    return drf_exception_handler(exc, context)
