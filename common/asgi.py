"""Django's ASGI handler, with each request's middleware and view run in one step in its thread."""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class OneHopASGIHandler(ASGIHandler):
    """Runs the middleware chain and the view as one synchronous call, in the request's thread.

    Django's own handler builds the chain for the event loop: every middleware that can run
    both ways (Django's own, through `MiddlewareMixin`) then runs its `process_request` and
    `process_response` through `sync_to_async`, one trip from the event loop to the request's
    thread and back each; a sync-only middleware (WhiteNoise) in the middle sends the rest back
    to the loop with `async_to_sync`, and a sync view is one trip more: 16 trips for a page of
    the admin. Here the chain is built as under WSGI and Django's sync `get_response` (the
    chain, and the log line of an answer >= 400) is entered once: three trips a request
    (request_started, the response, response.close), all in the request's own thread, which
    holds its database connection from the pool from start to finish. An `async def` view (the
    task event stream) is run by Django's sync handler with `async_to_sync`, on this event loop;
    its streaming response is sent from the loop after the chain returns, as before.

    Django ticket #37177 takes the same trips out of Django's own middleware.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)  # the chain as under WSGI; Django asks for async

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
