"""Fixtures of the sync tests."""

from typing import Any

import pytest


@pytest.fixture
def worker_provider(settings: Any, openai_server: Any) -> None:
    """This process embeds queries as the worker embeds chunks: the local OpenAI-protocol server."""
    settings.AI_PROVIDER = "openai"
    settings.OPENAI_BASE_URL = openai_server.base_url
    settings.OPENAI_API_KEY = "test-key"
