"""The ASGI handler (common.asgi): one trip from the event loop to the request's thread for the
middleware chain and the view, where Django's own handler makes one per middleware method."""

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.core.handlers.asgi import ASGIHandler

from common.asgi import OneHopASGIHandler
from conftest import BASE_DIR


def _get(handler: ASGIHandler, path: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, bytes, int]:
    """GET `path` from `handler` in this process: status, body, and how many times the request
    went from the event loop to a thread (each `sync_to_async` call)."""
    trips = 0
    call = SyncToAsync.__call__

    async def counted(self: SyncToAsync, *args: Any, **kwargs: Any) -> Any:
        nonlocal trips
        trips += 1
        return await call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []
    received = asyncio.Event()

    async def receive() -> dict:
        if not received.is_set():
            received.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(handler(scope, receive, send))
    monkeypatch.undo()
    status = next(message["status"] for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return status, body, trips


def test_a_request_goes_to_its_thread_once_for_the_middleware_chain_and_the_view(monkeypatch):
    status, body, trips = _get(OneHopASGIHandler(), "/admin/login/", monkeypatch)
    assert status == 200 and b'name="username"' in body
    # request_started, the chain with the view, response.close (request_finished)
    assert trips == 3


def test_django_s_own_handler_makes_a_trip_per_middleware_method(monkeypatch):
    """What OneHopASGIHandler saves: if Django's handler stops making these trips (ticket
    #37177), this fails and common.asgi can go."""
    status, _, trips = _get(ASGIHandler(), "/admin/login/", monkeypatch)
    assert status == 200
    assert trips >= 10


def test_the_web_process_keeps_what_it_loaded_at_start_out_of_the_garbage_collector():
    """config.asgi freezes the objects loaded at start (gc.freeze), so full collections under
    load do not walk Django and the apps each time."""
    code = "import gc, config.asgi; print(gc.get_freeze_count())"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=BASE_DIR)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) > 50_000
