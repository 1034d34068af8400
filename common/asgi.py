"""Django's ASGI handler, with each request's middleware and view run in one step in its thread."""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class OneHopASGIHandler(ASGIHandler):
    """Runs the middleware chain and the view as one synchronous call, in the request's thread.

    Django's own handler builds the chain for the event loop: every middleware that can run
    both ways (Django's own, through `MiddlewareMixin`) then runs its `process_request` and
    `process_response` through `sync_to_async`, one trip from the event loop to the request's
    thread and back each; a sync-only middleware (WhiteNoise) in the middle sends the rest back
    to the loop with `async_to_sync`, and a sync view is one trip more. That was about 13 trips
    a request. Here the chain is built as under WSGI and entered once: three trips a request
    (request_started, the chain, response.close). A request's code still runs in its own thread
    (its database connection is that thread's). An `async def` view (the task event stream) is
    run by Django's sync handler with `async_to_sync`, on this event loop: its streaming
    response is sent from the loop after the chain returns, as before.

    Django ticket #37177 takes the same trips out of Django's own middleware.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)
