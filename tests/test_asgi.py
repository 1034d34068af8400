"""The ASGI handler (common.asgi): one trip from the event loop to the request's thread for the
middleware chain and the view, where Django's own handler makes one per middleware method."""

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished, request_started
from django.http import HttpRequest, StreamingHttpResponse
from django.test import override_settings
from django.urls import path

from common.asgi import OneHopASGIHandler
from conftest import BASE_DIR


def _scope(url: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def _serve(
    handler: ASGIHandler, url: str, *, disconnect_after: float = 3600, loops: list[Any] | None = None
) -> tuple[int, bytes]:
    """GET `url` from `handler` in this process, the client leaving after `disconnect_after` s;
    the event loop it ran on is appended to `loops`."""
    sent: list[dict] = []
    asked = False

    async def receive() -> dict:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(disconnect_after)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    async def main() -> None:
        if loops is not None:
            loops.append(asyncio.get_running_loop())
        await asyncio.wait_for(handler(_scope(url), receive, send), timeout=30)

    asyncio.run(main())
    status = next(message["status"] for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return status, body


def _count_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every trip from the event loop to a thread (each `sync_to_async` call)."""
    trips = [0]
    call = SyncToAsync.__call__

    async def counted(self: SyncToAsync, *args: Any, **kwargs: Any) -> Any:
        trips[0] += 1
        return await call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    return trips


@pytest.mark.parametrize(("url", "status"), [("/admin/login/", 200), ("/no-such-page/", 404)])
def test_a_request_goes_to_its_thread_once_for_the_middleware_chain_and_the_view(monkeypatch, url, status):
    handler = OneHopASGIHandler()
    threads: dict[str, int] = {}

    def note(name: str) -> Callable[..., None]:
        def receiver(**_: Any) -> None:
            threads[name] = threading.get_ident()

        return receiver

    resolve = handler.resolve_request

    def resolve_noted(request: HttpRequest) -> Any:
        threads["view"] = threading.get_ident()
        return resolve(request)

    monkeypatch.setattr(handler, "resolve_request", resolve_noted)
    started, finished = note("started"), note("finished")
    request_started.connect(started)
    request_finished.connect(finished)
    trips = _count_trips(monkeypatch)
    try:
        answered, body = _serve(handler, url)
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert answered == status
    if status == 200:
        assert b'name="username"' in body
    # request_started, the response (chain, view, the log line of an error), response.close
    assert trips[0] == 3
    # One thread from start to finish: the pooled connection the view took goes back from it.
    assert threads["started"] == threads["view"] == threads["finished"]
    assert threads["view"] != threading.get_ident()


def test_django_s_own_handler_makes_a_trip_per_middleware_method(monkeypatch):
    """What OneHopASGIHandler saves: if Django's handler stops making these trips (ticket
    #37177), this fails and common.asgi can go."""
    trips = _count_trips(monkeypatch)
    status, _ = _serve(ASGIHandler(), "/admin/login/")
    assert status == 200
    assert trips[0] >= 10


seen: dict[str, Any] = {}


async def _ticks(request: HttpRequest) -> StreamingHttpResponse:
    seen["view loop"] = asyncio.get_running_loop()

    async def events() -> Any:
        seen["stream loop"] = asyncio.get_running_loop()
        try:
            while True:
                yield b"data: tick\n\n"
                await asyncio.sleep(0.02)
        finally:
            seen["closed"] = True

    return StreamingHttpResponse(events(), content_type="text/event-stream")


urlpatterns = [path("ticks/", _ticks)]


@override_settings(ROOT_URLCONF=__name__)
def test_an_async_streaming_view_runs_on_the_servers_loop_and_ends_when_the_client_leaves():
    """The event stream's way through the handler: an `async def` view, run by Django's sync
    handler with async_to_sync, must run on the server's own loop (where the process's
    StreamWaker lives), stream from it, and stop when the client disconnects."""
    seen.clear()
    loops: list[Any] = []
    status, body = _serve(OneHopASGIHandler(), "/ticks/", disconnect_after=0.3, loops=loops)
    assert status == 200 and body.count(b"data: tick") >= 3
    assert seen["view loop"] is loops[0] and seen["stream loop"] is loops[0]
    assert seen["closed"] is True  # the generator was closed when the client left


def test_the_web_process_uses_the_one_hop_handler_and_freezes_what_it_loaded_at_start():
    """config.asgi serves OneHopASGIHandler and freezes the objects loaded at start
    (gc.freeze), so full collections under load do not walk Django and the apps each time."""
    code = "import gc, config.asgi; print(type(config.asgi.application).__name__, gc.get_freeze_count())"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=BASE_DIR)
    assert result.returncode == 0, result.stderr
    handler, frozen = result.stdout.split()[-2:]
    assert handler == "OneHopASGIHandler"
    assert int(frozen) > 50_000
