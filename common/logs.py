"""Structured logs: every line says which request and which task it belongs to.

The ids live in context variables, so they follow the work through threads (Django runs sync
views in a thread under ASGI; the worker runs each task in a pool thread) without being passed
around. The web side binds the request id (`common.middleware.RequestIdMiddleware`); `jobs`
stores it on each task record and sends it with the task's message, and the worker binds it
with the task's id and name (`jobs/worker_signals.py`). A filter on the log handler copies them
onto every record; the formatter writes one JSON object per line (LOG_FORMAT=json, python-json-
logger) or plain text with the ids appended (LOG_FORMAT=text, for a terminal).
"""

import contextvars
import re
import uuid
from logging import Filter, LogRecord
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming X-Request-ID is kept only if it looks like an id (a proxy's or a client's);
# anything else (too long, spaces, control characters) is replaced by a new one.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_task_id: contextvars.ContextVar[str] = contextvars.ContextVar("task_id", default="")
_task_name: contextvars.ContextVar[str] = contextvars.ContextVar("task_name", default="")


def request_id_get() -> str:
    """The id of the request the current code works for ("" outside any)."""
    return _request_id.get()


def request_id_accept(value: str | None) -> str:
    """An incoming header's value if it is a sane id, else a new id."""
    if value and SANE_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


def log_context_bind(*, request_id: str = "", task_id: str = "", task_name: str = "") -> None:
    """Set the ids every following log line of this context carries ("" clears one)."""
    _request_id.set(request_id)
    _task_id.set(task_id)
    _task_name.set(task_name)


class ContextFilter(Filter):
    """Put the current request and task ids on every record that reaches the handler."""

    def filter(self, record: LogRecord) -> bool:
        record.request_id = _request_id.get() or None
        record.task_id = _task_id.get() or None
        record.task_name = _task_name.get() or None
        ids = [f"{name}={value}" for name, value in _ids(record) if value]
        record.context = f" [{' '.join(ids)}]" if ids else ""
        return True


def _ids(record: LogRecord) -> list[tuple[str, Any]]:
    return [("request_id", record.request_id), ("task", record.task_name), ("task_id", record.task_id)]


JSON_FIELDS = "%(levelname)s %(name)s %(message)s %(request_id)s %(task_id)s %(task_name)s"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """The LOGGING setting: one console handler, JSON lines or text, with the context filter."""
    if log_format not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be json or text, not {log_format!r}")
    json_formatter = {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": JSON_FIELDS,
        "rename_fields": {"levelname": "level", "name": "logger"},
        "timestamp": "time",  # ISO 8601, UTC
        "reserved_attrs": [*RESERVED_ATTRS, "context"],  # `context` is the text format's copy of the ids
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "common.logs.ContextFilter"}},
        "formatters": {"json": json_formatter, "text": {"format": TEXT_FORMAT}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["context"]},
        },
        "root": {"handlers": ["console"], "level": level},
    }
