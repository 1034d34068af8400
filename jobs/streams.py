"""`GET /api/v1/tasks/{task_id}/events/`: a task's state and progress as Server-Sent Events.

An async view, so one ASGI process holds hundreds of open streams without a thread each: the
only synchronous step is the lookup at the start (authentication and the owner-scoped record,
through `sync_to_async`); after that each stream is fed by the process's one subscription
(`jobs/fanout.py`), reads the task's Redis stream itself only to start or catch up, and never
touches the database again, however many events arrive. An open stream holds no Redis connection.

Order of a stream: the record's current state first (with the id of the stream's last entry, so
nothing published meanwhile is lost), then every new entry as it arrives, each with its stream
entry id as the SSE `id:`; it ends after a final state (SUCCESS, FAILURE, REVOKED). A client that
reconnects with `Last-Event-ID` gets the entries after that id, and the final state at once if
the task already finished. A comment line keeps idle connections open through proxies; after
TASK_EVENTS_MAX_SECONDS the server closes the stream and the browser reconnects with its last id.
"""

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from jobs.events import FINAL_STATES, stream_key
from jobs.fanout import StreamWaker, stream_waker
from jobs.selectors import task_record_get

EVENT_ID_RE = re.compile(r"^\d+-\d+$")
SNAPSHOT_FIELDS = ("state", "progress_percent", "progress_message", "error", "result")
RECONNECT_MILLISECONDS = 2000


async def task_events_view(request: HttpRequest, task_id: str) -> HttpResponse:
    """Stream one task's events to its owner or staff; 401 without credentials, 404 otherwise."""
    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    try:
        task_uuid = uuid.UUID(task_id)
    except ValueError:
        return _not_found()
    waker = stream_waker()
    # The stream's tail is read before the record, so whatever is published after the
    # snapshot was taken is read from the stream: a client may see a change twice, never miss one.
    tail = await _stream_tail(waker, task_uuid)
    outcome = await sync_to_async(_authorized_snapshot)(request, task_uuid)
    if isinstance(outcome, HttpResponse):
        return outcome
    last_event_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or ""
    stream = _events(waker, task_uuid, snapshot=outcome, tail=tail, resume_after=last_event_id.strip())
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _authorized_snapshot(request: HttpRequest, task_uuid: uuid.UUID) -> dict[str, Any] | HttpResponse:
    """The record's current state if the caller may see it; an error response otherwise.

    Authenticates with the API's own classes (API key, then session), so the stream accepts
    exactly what the rest of the API accepts. The database connection is closed before the
    stream starts: an open stream must not hold a connection for its whole life.
    """
    try:
        drf_request = Request(request, authenticators=[auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
        user = drf_request.user
        if not user or not user.is_authenticated:
            return _unauthorized("Authentication credentials were not provided.")
        record = task_record_get(user=user, task_id=str(task_uuid))
        if record is None:
            return _not_found()
        return {field: getattr(record, field) for field in SNAPSHOT_FIELDS}
    except exceptions.AuthenticationFailed as exc:
        return _unauthorized(str(exc.detail))
    finally:
        if not connection.in_atomic_block:
            connection.close()


async def _stream_tail(waker: StreamWaker, task_uuid: uuid.UUID) -> str | None:
    entries = await waker.redis.xrevrange(stream_key(task_uuid), count=1)
    return entries[0][0].decode() if entries else None


async def _events(
    waker: StreamWaker, task_uuid: uuid.UUID, *, snapshot: dict[str, Any], tail: str | None, resume_after: str
) -> AsyncIterator[str]:
    """The SSE text of one stream, from the snapshot (or the reconnect point) to a final state."""
    key = stream_key(task_uuid)
    deadline = time.monotonic() + settings.TASK_EVENTS_MAX_SECONDS
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
    if EVENT_ID_RE.match(resume_after):
        cursor = resume_after
        missed = await waker.redis.xrange(key, min=f"({resume_after}")
        for entry_id, values in missed:
            cursor = entry_id.decode()
            event = json.loads(values[b"data"])
            yield _format(event, entry_id=cursor)
            if event.get("state") in FINAL_STATES:
                return
        if snapshot["state"] in FINAL_STATES:  # finished, and its final entry was seen or expired
            yield _format(snapshot, entry_id=tail or cursor)
            return
    else:
        yield _format(snapshot, entry_id=tail)
        if snapshot["state"] in FINAL_STATES:
            return
        cursor = tail or "0-0"
    async with waker.follow(key) as follower:
        while (remaining := deadline - time.monotonic()) > 0:
            timeout = min(settings.TASK_EVENTS_KEEPALIVE_SECONDS, remaining)
            entries = await follower.entries_after(cursor, timeout=timeout)
            if not entries:
                yield ": keep-alive\n\n"
                continue
            for cursor, data in entries:
                event = json.loads(data)
                yield _format(event, entry_id=cursor)
                if event.get("state") in FINAL_STATES:
                    return


def _format(event: dict[str, Any], *, entry_id: str | None) -> str:
    data = json.dumps({**event, "final": event.get("state") in FINAL_STATES}, default=str)
    return (f"id: {entry_id}\n" if entry_id else "") + f"data: {data}\n\n"


def _not_found() -> JsonResponse:
    return JsonResponse({"detail": "No such task."}, status=404)


def _unauthorized(detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=401)
    response["WWW-Authenticate"] = "Token"
    return response


# One event of the stream (OpenAPI before 3.2 describes each event with `schema`): its `data` is JSON.
EVENT_DATA_SCHEMA = {
    "type": "object",
    "properties": {
        "state": {"type": "string"},
        "progress_percent": {"type": "integer", "nullable": True},
        "progress_message": {"type": "string"},
        "partial_text": {"type": "string"},
        "error": {"type": "string"},
        "result": {},
        "final": {"type": "boolean"},
    },
}
EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The Redis stream entry id; send it back as Last-Event-ID."},
        "event": {"type": "string"},
        "retry": {"type": "integer"},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": EVENT_DATA_SCHEMA},
    },
    "required": ["data"],
}


def schema_add_task_events(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: describe the event stream, which is no DRF view."""
    detail = result.get("paths", {}).get("/api/v1/tasks/{task_id}/", {}).get("get", {})
    example = (
        "retry: 2000\n\n"
        'id: 1732450000000-0\ndata: {"state": "PROGRESS", "progress_percent": 5, "progress_message": "generating", '
        '"error": "", "result": null, "final": false}\n\n'
        ": keep-alive\n\n"
        'id: 1732450002000-0\ndata: {"state": "SUCCESS", "progress_percent": 100, "result": {}, "error": "", '
        '"final": true}\n\n'
    )
    operation = {
        "operationId": "tasks_events_retrieve",
        "summary": "Follow a task live (Server-Sent Events)",
        "description": (
            "A `text/event-stream` of the task's state and progress changes; owner or staff only (404 "
            "otherwise). The first event is the task's current state; then each change as it happens, "
            "with the Redis stream entry id as the event `id`; the stream ends after the final state "
            "(SUCCESS, FAILURE or REVOKED, `final: true`). Each event's `data` is JSON with the fields "
            "that changed (`state`, `progress_percent`, `progress_message`, `error`, `result`, "
            "`partial_text`) and `final`. Reconnecting with the `Last-Event-ID` header (browsers do it "
            "by themselves) resumes after that event, and gets the final state at once if the task has "
            "finished; close the stream on `final`. A `: keep-alive` comment is sent every "
            f"{settings.TASK_EVENTS_KEEPALIVE_SECONDS:g} s; the server ends a stream after "
            f"{settings.TASK_EVENTS_MAX_SECONDS:g} s and the client reconnects. In a browser: "
            "`new EventSource('/api/v1/tasks/<id>/events/')` with the session cookie; elsewhere send the "
            "API key header as for every endpoint."
        ),
        "tags": detail.get("tags", ["tasks"]),
        "parameters": [
            {"in": "path", "name": "task_id", "required": True, "schema": {"type": "string", "format": "uuid"}},
            {
                "in": "header",
                "name": "Last-Event-ID",
                "required": False,
                "schema": {"type": "string"},
                "description": "Resume after this event id (also accepted as `?last_event_id=`).",
            },
        ],
        "responses": {
            "200": {
                "description": "The event stream.",
                "content": {"text/event-stream": {"schema": EVENT_SCHEMA, "example": example}},
            },
            "401": {"description": "No or invalid credentials."},
            "404": {"description": "No such task, or not yours."},
        },
    }
    if "security" in detail:
        operation["security"] = detail["security"]
    result.setdefault("paths", {})["/api/v1/tasks/{task_id}/events/"] = {"get": operation}
    return result
