"""Embeddings through both providers: the real `openai` client against the local server, and offline."""

import math

import pytest

from ai import providers
from tests.openai_server import embed_text


@pytest.fixture
def openai_provider(db, settings, openai_server):
    """Every call goes through the provider budgets, which live in the database and Redis."""
    settings.OPENAI_BASE_URL = openai_server.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.AI_TIMEOUT_SECONDS = 2
    settings.AI_MAX_RETRIES = 1
    settings.AI_EMBEDDING_DIMENSIONS = 64
    settings.AI_EMBEDDING_BATCH_SIZE = 2
    return providers.OpenAIProvider()


def embedding_calls(openai_server, marker):
    return [r for r in openai_server.requests if r["path"] == "/v1/embeddings" and marker in str(r["body"])]


def test_openai_embeddings_are_batched_and_ask_for_the_configured_dimensions(openai_provider, openai_server):
    texts = ["alpha one [emb-batch]", "beta two [emb-batch]", "gamma three [emb-batch]"]

    result = openai_provider.embed(texts)

    assert result.provider == "openai"
    assert result.model == "text-embedding-3-small"
    assert result.dimensions == 64
    assert [len(v) for v in result.vectors] == [64, 64, 64]
    for text, vector in zip(texts, result.vectors, strict=True):
        assert vector == pytest.approx(embed_text(text, 64), abs=1e-6)  # in input order
    calls = embedding_calls(openai_server, "[emb-batch]")
    assert [len(call["body"]["input"]) for call in calls] == [2, 1]
    assert {call["body"]["dimensions"] for call in calls} == {64}
    assert {call["body"]["model"] for call in calls} == {"text-embedding-3-small"}


@pytest.mark.parametrize(
    ("directive", "message"),
    [
        ("#status=400", "The provider answered HTTP 400: Forced status 400"),
        ("#fail=always", "The provider answered HTTP 500"),
        ("#malformed", "could not be read"),
        ("#empty", "could not be read"),
    ],
)
def test_openai_embedding_failures_become_readable_provider_errors(openai_provider, directive, message):
    with pytest.raises(providers.ProviderError, match=message):
        openai_provider.embed([f"{directive} doomed"])


def test_openai_embeddings_of_another_width_are_refused(openai_provider, settings):
    settings.AI_EMBEDDING_SEND_DIMENSIONS = False  # the server then answers with its default 1536

    with pytest.raises(providers.ProviderError, match="1536-dimensional embeddings; AI_EMBEDDING_DIMENSIONS is 64"):
        openai_provider.embed(["too wide"])


def test_offline_embeddings_are_deterministic_unit_vectors_that_rank_shared_words_first(settings):
    settings.AI_EMBEDDING_DIMENSIONS = 256
    provider = providers.OfflineProvider()

    result = provider.embed(["Volcanoes erupt lava.", "Volcanoes erupt lava.", "Bread needs yeast and flour.", ""])
    query = provider.embed(["lava from volcanoes"]).vectors[0]

    assert (result.provider, result.model, result.dimensions) == ("offline", "offline-hashing-1", 256)
    assert result.vectors[0] == result.vectors[1]
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0) for v in result.vectors)

    def cosine(a, b):
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(query, result.vectors[0]) > 0.5 > cosine(query, result.vectors[2])


def test_the_configured_provider_follows_settings_changes(settings, openai_server):
    settings.AI_PROVIDER = "offline"
    assert providers.embedding_model() == "offline-hashing-1"

    settings.AI_PROVIDER = "openai"
    settings.OPENAI_BASE_URL = openai_server.base_url
    settings.AI_EMBEDDING_MODEL = "text-embedding-3-large"

    assert providers.embedding_model() == "text-embedding-3-large"
    assert providers.get_provider().name == "openai"
