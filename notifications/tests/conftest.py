"""Fixtures of the notification tests: a local webhook receiver, endpoints that point at it."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from notifications.models import WebhookEndpoint
from notifications.services import webhook_endpoint_create
from notifications.tests.receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def make_endpoint(settings: Any, receiver: WebhookReceiver) -> Callable[..., WebhookEndpoint]:
    """An endpoint of `user` on the local receiver (private addresses allowed for it, as in the worker)."""
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True

    def make(user: Any, path: str = "/ok", events: tuple[str, ...] = ("prompt.completed",)) -> WebhookEndpoint:
        return webhook_endpoint_create(user=user, url=receiver.url(path), events=list(events))

    return make
