"""django-celery-results' database backend, made to wait out a database restart.

Celery stores a task's states (STARTED, RETRY, SUCCESS, FAILURE) through the result backend
inside the worker's trace of the task. If that store raises, the exception escapes the trace:
under the threads pool the message is then never acknowledged nor given back, and the worker's
slot is lost until it restarts (16 lost slots and the worker takes nothing more). The stock
backend retries only psycopg2's InterfaceError; with psycopg 3 a dead server raises
OperationalError. Retrying both, on a new connection, with backoff, lets the store wait for the
server instead. Storing a result is an upsert, so a retry after a store that did commit is harmless.
"""

from typing import Any

from django.db import InterfaceError, OperationalError, connection
from django_celery_results.backends.database import DatabaseBackend


class RetryingDatabaseBackend(DatabaseBackend):
    """Retries lost connections (result_backend_always_retry and its limits apply)."""

    def exception_safe_to_retry(self, exc: Any) -> bool:
        if isinstance(exc, (InterfaceError, OperationalError)):
            connection.close()  # the next attempt connects again
            return True
        return super().exception_safe_to_retry(exc)
