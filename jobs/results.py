"""django-celery-results' database backend: one statement per stored state, and waits out a restart.

Celery stores a task's states (STARTED, RETRY, SUCCESS, FAILURE) through the result backend
inside the worker's trace of the task.

One statement: the stock backend stores a state with `get_or_create` and then `save()`: a
SELECT, then BEGIN, INSERT, COMMIT for the first state and SELECT, UPDATE for the next, six
statements per task that tracks STARTED. Here each state is one `INSERT ... ON CONFLICT
(task_id) DO UPDATE`, writing the same columns the stock manager writes (`date_started` only
with STARTED, so a later state keeps it; `date_created` only on insert).

Waiting out a restart: if that store raises, the exception escapes the trace: under the threads
pool the message is then never acknowledged nor given back, and the worker's slot is lost until
it restarts (16 lost slots and the worker takes nothing more). The stock backend retries only
psycopg2's InterfaceError; with psycopg 3 a dead server raises OperationalError. Retrying both,
on a new connection, with backoff, lets the store wait for the server instead. Storing a result
is an upsert, so a retry after a store that did commit is harmless.
"""

from typing import Any

from celery import states
from django.db import InterfaceError, OperationalError, connection, connections, router
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend

# What every stored state rewrites (as the stock manager's store_result), besides date_done.
_STATE_FIELDS = (
    "status", "result", "traceback", "meta", "content_encoding", "content_type",
    "periodic_task_name", "task_name", "task_args", "task_kwargs", "worker",
)  # fmt: skip


class RetryingDatabaseBackend(DatabaseBackend):
    """Stores each state with one upsert; retries lost connections (result_backend_always_retry applies)."""

    def exception_safe_to_retry(self, exc: Any) -> bool:
        if isinstance(exc, (InterfaceError, OperationalError)):
            connection.close()  # the next attempt connects again
            return True
        return super().exception_safe_to_retry(exc)

    def _store_result(
        self,
        task_id: str,
        result: Any,
        status: str,
        traceback: str | None = None,
        request: Any = None,
        using: str | None = None,
    ) -> Any:
        content_type, content_encoding, encoded = self.encode_content(result)
        meta = {**self._get_meta_from_request(request), "children": self.current_task_children(request)}
        _, _, encoded_meta = self.encode_content(meta)
        values = {
            **self._get_extended_properties(request, traceback),
            "task_id": task_id,
            "status": status,
            "result": encoded,
            "traceback": traceback,  # kept without a request too (the stock backend drops it then)
            "meta": encoded_meta,
            "content_encoding": content_encoding,
            "content_type": content_type,
        }
        now = timezone.now()
        values["date_created"] = values["date_done"] = now
        updated = [*_STATE_FIELDS, "date_done"]
        if status == states.STARTED:
            values["date_started"] = now
            updated.append("date_started")
        model = self.TaskModel
        db = using or router.db_for_write(model)
        with connections[db].cursor() as cursor:
            cursor.execute(_upsert_sql(model._meta.db_table, tuple(values), tuple(updated)), list(values.values()))
        return encoded


def _upsert_sql(table: str, columns: tuple[str, ...], updated: tuple[str, ...]) -> str:
    """INSERT of `columns` that, when the task id is already stored, rewrites `updated` instead."""
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT (task_id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in updated)}"
    )
