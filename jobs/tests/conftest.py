"""Fixtures of the jobs tests."""

from collections.abc import Iterator

import pytest
from redis import Redis


@pytest.fixture
def broker(settings, request) -> Iterator[Redis]:
    """The broker's Redis, with the test module's `QUEUE` (one no worker listens to, so messages
    stay countable) emptied before and after the test."""
    queue = request.module.QUEUE
    client = Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(queue)
    yield client
    client.delete(queue)
