"""The provider wrapper: chat, translation, embeddings and images over the `openai` SDK, or offline.

Works with any OpenAI-compatible server through OPENAI_BASE_URL. Every attempt at a call, first
or retried, takes its slot in the shared provider budget first (`ai.budgets`): so the SDK's own
retries are off and done here instead, the way the SDK does them (429, 408, 409, 5xx, connection
errors and timeouts; exponential backoff with jitter; AI_MAX_RETRIES times), except that a 429
pauses the budget for every worker for its Retry-After. Whatever still fails becomes a
ProviderError with a readable message; a budget that has no room within the wait a caller
accepts raises `BudgetExhausted` (the task re-schedules itself). Knows nothing of users, tiers
or tasks.
"""

import base64
import binascii
import contextlib
import hashlib
import itertools
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import openai
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from ai.budgets import BudgetExhausted, budget_acquire, budget_pause, budget_settle
from ai.png import gradient_rows, png_encode

__all__ = ["BudgetExhausted", "ProviderError", "chat", "embed", "embedding_model", "image", "translate"]
R = TypeVar("R")
logger = logging.getLogger(__name__)
RETRY_STATUSES = {408, 409, 429}  # and every 5xx: what the SDK itself retries

ProgressCallback = Callable[[float], None]  # fraction done, 0.0-1.0; may raise to stop the work
TextCallback = Callable[[str], None]  # the answer so far, while it streams in


class ProviderError(Exception):
    """The provider could not produce an answer; the message says why, for the user."""


@dataclass(frozen=True)
class ChatResult:
    """A chat answer and who produced it."""

    text: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    duration_ms: int


@dataclass(frozen=True)
class EmbeddingResult:
    """One vector per input text, in order, and the model that produced them."""

    vectors: list[list[float]]
    provider: str
    model: str
    dimensions: int


@dataclass(frozen=True)
class ImageResult:
    """A generated PNG and who produced it."""

    png: bytes
    provider: str
    model: str
    duration_ms: int


@dataclass(frozen=True)
class TranslationResult:
    """Texts translated into one language, in input order."""

    texts: list[str]
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    duration_ms: int


class Provider(Protocol):
    name: str

    @property
    def embedding_model(self) -> str: ...

    def chat(
        self, messages: list[dict[str, str]], *, model: str, on_text: TextCallback | None = None
    ) -> ChatResult: ...

    def embed(self, texts: list[str]) -> EmbeddingResult: ...

    def translate(self, texts: list[str], *, source: str, target: str, model: str) -> TranslationResult: ...

    def image(self, prompt: str, *, size: str, steps: int, on_progress: ProgressCallback) -> ImageResult: ...


def translation_messages(texts: list[str], *, source: str, target: str) -> list[dict[str, str]]:
    """The chat protocol for translation: a JSON array in, a JSON array of the same length out."""
    instruction = (
        f"Translate each string in the JSON array from {source} into {target}. Answer with only a JSON "
        "array of the translated strings, in the same order and of the same length."
    )
    return [
        {"role": "system", "content": instruction},
        {"role": "user", "content": json.dumps(texts, ensure_ascii=False)},
    ]


def translation_parse(text: str, expected: int) -> list[str]:
    """The translated strings from a model's answer, or ProviderError if it is not what was asked."""
    cleaned = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        parsed = json.loads(cleaned)
    except ValueError:
        parsed = None
    if not isinstance(parsed, list) or len(parsed) != expected or not all(isinstance(t, str) for t in parsed):
        raise ProviderError(
            f"The provider's translation could not be read: expected a JSON array of {expected} strings."
        )
    return parsed


def _batches(texts: list[str]) -> Iterator[list[str]]:
    size = max(1, settings.AI_EMBEDDING_BATCH_SIZE)
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


class OpenAIProvider:
    """Any server that speaks the OpenAI protocol."""

    name = "openai"

    def __init__(self) -> None:
        self._client = openai.OpenAI(
            api_key=settings.OPENAI_API_KEY or "not-needed",
            base_url=settings.OPENAI_BASE_URL or None,
            timeout=settings.AI_TIMEOUT_SECONDS,
            max_retries=0,  # retried in `_call`, each attempt through the budget
        )

    @property
    def embedding_model(self) -> str:
        return settings.AI_EMBEDDING_MODEL

    def chat(self, messages: list[dict[str, str]], *, model: str, on_text: TextCallback | None = None) -> ChatResult:
        """A chat completion; with `on_text`, streamed, calling it with the growing answer."""
        started = time.monotonic()
        tokens = _chat_tokens_estimate(messages)
        if on_text is not None:
            return self._call(model, tokens, lambda: self._chat_streamed(messages, model, on_text, started))

        def once() -> ChatResult:
            completion = self._client.chat.completions.create(model=model, messages=messages)
            usage = completion.usage
            return ChatResult(
                text=completion.choices[0].message.content or "",
                provider=self.name,
                model=completion.model or model,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                duration_ms=int((time.monotonic() - started) * 1000),
            )

        return self._call(model, tokens, once)

    def _chat_streamed(
        self, messages: list[dict[str, str]], model: str, on_text: TextCallback, started: float
    ) -> ChatResult:
        parts: list[str] = []
        usage = None
        answered_model = model
        stream = self._client.chat.completions.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        )
        for chunk in stream:
            answered_model = chunk.model or answered_model
            usage = chunk.usage or usage
            if chunk.choices:
                delta = chunk.choices[0].delta.content
                if delta:
                    parts.append(delta)
                    on_text("".join(parts))
            elif chunk.choices is None:
                raise ValueError("a streamed chunk without choices")
        return ChatResult(
            text="".join(parts),
            provider=self.name,
            model=answered_model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    def embed(self, texts: list[str]) -> EmbeddingResult:
        """Embed `texts` in batches of AI_EMBEDDING_BATCH_SIZE, asking for AI_EMBEDDING_DIMENSIONS."""
        dimensions = settings.AI_EMBEDDING_DIMENSIONS
        extra: dict[str, Any] = {"dimensions": dimensions} if settings.AI_EMBEDDING_SEND_DIMENSIONS else {}
        vectors: list[list[float]] = []
        for batch in _batches(texts):

            def once(batch: list[str] = batch) -> tuple[list[list[float]], int]:
                response = self._client.embeddings.create(model=self.embedding_model, input=batch, **extra)
                data = sorted(response.data, key=lambda item: item.index)
                used = response.usage.total_tokens if response.usage else _text_tokens(batch)
                return [list(item.embedding) for item in data], used

            batch_vectors, _ = self._call(self.embedding_model, _text_tokens(batch), once, used=lambda r: r[1])
            if len(batch_vectors) != len(batch):
                raise ProviderError(f"The provider returned {len(batch_vectors)} embeddings for {len(batch)} texts.")
            wrong = next((len(v) for v in batch_vectors if len(v) != dimensions), None)
            if wrong is not None:
                raise ProviderError(
                    f"The provider returned {wrong}-dimensional embeddings; AI_EMBEDDING_DIMENSIONS is {dimensions}."
                )
            vectors.extend(batch_vectors)
        # The configured name, not the response's: servers may answer with an alias or a dated
        # name, and a differing name would look like a model change and re-embed everything.
        return EmbeddingResult(vectors=vectors, provider=self.name, model=self.embedding_model, dimensions=dimensions)

    def translate(self, texts: list[str], *, source: str, target: str, model: str) -> TranslationResult:
        answer = self.chat(translation_messages(texts, source=source, target=target), model=model)
        return TranslationResult(
            texts=translation_parse(answer.text, len(texts)),
            provider=answer.provider,
            model=answer.model,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            duration_ms=answer.duration_ms,
        )

    def image(self, prompt: str, *, size: str, steps: int, on_progress: ProgressCallback) -> ImageResult:
        started = time.monotonic()
        model = settings.AI_IMAGE_MODEL
        extra = {"response_format": "b64_json"} if model.startswith("dall-e") else {}

        def once() -> bytes:
            result = self._client.images.generate(model=model, prompt=prompt, size=size, n=1, **extra)
            encoded = result.data[0].b64_json
            if not encoded:
                raise ValueError("no b64_json image in the answer")
            return base64.b64decode(encoded, validate=True)

        png = self._call(model, 0, once)
        on_progress(1.0)
        return ImageResult(
            png=png, provider=self.name, model=model, duration_ms=int((time.monotonic() - started) * 1000)
        )

    def _call(self, model: str, tokens: int, once: Callable[[], R], used: Callable[[R], int] | None = None) -> R:
        """Run `once` through the budget of `model`, retrying what is worth retrying; errors made readable.

        Every attempt takes a slot first. A 429 pauses the budget for every worker for its
        Retry-After (the next attempt's slot waits for it); other retryable failures back off
        here. A failed attempt keeps its request slot (it reached the provider) but no tokens.
        """
        with _provider_errors():
            for attempt in itertools.count():
                grant = budget_acquire(self.name, model, tokens=tokens)
                try:
                    result = once()
                except (openai.APIStatusError, openai.APIConnectionError) as exc:
                    budget_settle(grant, tokens=0)
                    status = getattr(exc, "status_code", None)  # None: no answer (connection, timeout)
                    if status == 429:
                        pause = _retry_after(exc) or _backoff(attempt)
                        logger.info("%s answered 429 for %s: every worker waits %.1f s", self.name, model, pause)
                        budget_pause(self.name, model, pause)
                    retryable = status is None or status in RETRY_STATUSES or status >= 500
                    if not retryable or attempt >= settings.AI_MAX_RETRIES or not _should_retry(exc):
                        raise
                    if status != 429:
                        time.sleep(_backoff(attempt))
                    continue
                except BaseException:
                    budget_settle(grant, tokens=0)
                    raise
                budget_settle(grant, tokens=used(result) if used else _result_tokens(result, tokens))
                return result
        raise AssertionError("unreachable")  # pragma: no cover


def _backoff(attempt: int) -> float:
    """The SDK's own schedule: 0.5 s doubling up to 8 s, minus up to a quarter of jitter."""
    return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())


def _retry_after(exc: openai.APIError) -> float | None:
    """Seconds the provider asked to wait (Retry-After, or retry-after-ms), if it said so."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        if milliseconds := response.headers.get("retry-after-ms"):
            return float(milliseconds) / 1000
        if seconds := response.headers.get("retry-after"):
            return float(seconds)
    return None


def _should_retry(exc: openai.APIError) -> bool:
    """The provider may say outright whether to retry (x-should-retry), as the SDK honours."""
    response = getattr(exc, "response", None)
    return response is None or response.headers.get("x-should-retry", "true").lower() != "false"


def _text_tokens(texts: list[str]) -> int:
    """A cheap estimate: about four characters a token."""
    return sum(len(text) for text in texts) // 4 + 1


def _chat_tokens_estimate(messages: list[dict[str, str]]) -> int:
    return _text_tokens([str(m.get("content", "")) for m in messages]) + settings.AI_BUDGET_ANSWER_TOKENS


def _result_tokens(result: object, estimate: int) -> int:
    """Tokens the provider reported for a chat answer, else what was reserved."""
    if isinstance(result, ChatResult) and (result.prompt_tokens or result.completion_tokens):
        return result.prompt_tokens + result.completion_tokens
    return estimate if isinstance(result, ChatResult) else 0


@contextlib.contextmanager
def _provider_errors() -> Iterator[None]:
    """Turn whatever the SDK raises into a ProviderError with a message for the user."""
    readable = (openai.APIError, ValueError, KeyError, IndexError, TypeError, AttributeError, binascii.Error)
    try:
        yield
    except openai.APITimeoutError:
        raise ProviderError(
            f"The provider did not answer within {settings.AI_TIMEOUT_SECONDS:g} s "
            f"({settings.AI_MAX_RETRIES + 1} tries)."
        ) from None
    except openai.APIConnectionError as exc:
        raise ProviderError(f"Could not reach the provider: {exc}") from None
    except openai.APIStatusError as exc:
        raise ProviderError(f"The provider answered HTTP {exc.status_code}: {_error_message(exc)}") from None
    except readable as exc:
        raise ProviderError(f"The provider's answer could not be read: {type(exc).__name__}: {exc}") from None


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    return (error.get("message") if isinstance(error, dict) else None) or exc.message


class OfflineProvider:
    """Deterministic answers with no network, so the demo runs anywhere; marked as offline."""

    name = "offline"
    model = "offline-echo-1"
    embedding_model = "offline-hashing-1"

    def chat(self, messages: list[dict[str, str]], *, model: str, on_text: TextCallback | None = None) -> ChatResult:
        started = time.monotonic()
        question = messages[-1]["content"] if messages else ""
        digest = hashlib.sha256(question.encode()).hexdigest()[:8]
        words = question.split()
        summary = " ".join(words[:40]) + (" …" if len(words) > 40 else "")
        text = f"[offline provider, no model was called] You asked ({len(words)} words, id {digest}): {summary}"
        if on_text is not None:  # a few growing pieces, like a streamed answer
            words_out = text.split(" ")
            for end in range(1, 4):
                on_text(" ".join(words_out[: len(words_out) * end // 3]))
        return ChatResult(
            text=text,
            provider=self.name,
            model=self.model,
            prompt_tokens=sum(len(m["content"].split()) for m in messages),
            completion_tokens=len(text.split()),
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    def embed(self, texts: list[str]) -> EmbeddingResult:
        """Feature hashing: words and word pairs hashed into AI_EMBEDDING_DIMENSIONS, L2-normalised."""
        dimensions = settings.AI_EMBEDDING_DIMENSIONS
        vectors = [_hashed_vector(text, dimensions) for text in texts]
        return EmbeddingResult(vectors=vectors, provider=self.name, model=self.embedding_model, dimensions=dimensions)

    def translate(self, texts: list[str], *, source: str, target: str, model: str) -> TranslationResult:
        translated = [f"[{target}] {text}" for text in texts]
        words = sum(len(t.split()) for t in texts)
        return TranslationResult(translated, self.name, self.model, words, words + len(texts), 0)

    def image(self, prompt: str, *, size: str, steps: int, on_progress: ProgressCallback) -> ImageResult:
        """Draw a real PNG in `steps` visible steps (so progress and cancel can be seen in the demo)."""
        started = time.monotonic()
        width, height = (int(n) for n in size.split("x"))
        seed = hashlib.sha256(prompt.encode()).digest()
        rows: list[bytes] = []
        for step in range(steps):
            rows += gradient_rows(width, height, seed, height * step // steps, height * (step + 1) // steps)
            time.sleep(settings.AI_OFFLINE_IMAGE_STEP_SECONDS)
            on_progress((step + 1) / steps)
        png = png_encode(width, height, rows)
        return ImageResult(png, self.name, "offline-gradient-1", int((time.monotonic() - started) * 1000))


_WORD = re.compile(r"\w+")
BIGRAM_WEIGHT = 0.5  # word pairs add some order, words carry most of the meaning


def _hashed_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector: each feature adds +-weight at a hashed position."""
    words = _WORD.findall(text.lower())
    features = [(word, 1.0) for word in words]
    features += [(f"{a} {b}", BIGRAM_WEIGHT) for a, b in itertools.pairwise(words)]
    sparse: dict[int, float] = {}
    for feature, weight in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:7], "little") % dimensions
        sparse[index] = sparse.get(index, 0.0) + (weight if digest[7] & 1 else -weight)
    norm = math.sqrt(sum(v * v for v in sparse.values()))
    vector = [0.0] * dimensions
    if norm == 0.0:  # no words: a fixed unit vector, since cosine distance to zero is undefined
        vector[0] = 1.0
        return vector
    for index, value in sparse.items():
        vector[index] = value / norm
    return vector


_lock = threading.Lock()


@lru_cache(maxsize=4)
def _provider(name: str) -> Provider:
    with _lock:
        if name == "offline":
            return OfflineProvider()
        if name == "openai":
            return OpenAIProvider()
    raise ProviderError(f"Unknown AI_PROVIDER {name!r}: use 'openai' or 'offline'.")


def get_provider() -> Provider:
    """The configured provider (one client per process, shared by threads)."""
    return _provider(settings.AI_PROVIDER)


def chat(messages: list[dict[str, str]], *, model: str, on_text: TextCallback | None = None) -> ChatResult:
    """One chat completion with the configured provider (streamed when `on_text` is given)."""
    return get_provider().chat(messages, model=model, on_text=on_text)


def translate(texts: list[str], *, source: str, target: str, model: str) -> TranslationResult:
    """Translate texts into one language with the configured provider, in one call."""
    return get_provider().translate(texts, source=source, target=target, model=model)


def image(prompt: str, *, size: str, steps: int, on_progress: ProgressCallback) -> ImageResult:
    """Generate one PNG with the configured provider, reporting progress as it goes."""
    return get_provider().image(prompt, size=size, steps=steps, on_progress=on_progress)


def embed(texts: list[str]) -> EmbeddingResult:
    """Embed `texts` with the configured provider (batched per call)."""
    return get_provider().embed(texts)


def embedding_model() -> str:
    """The model name that `embed` records today; chunks from another model need re-embedding."""
    return get_provider().embedding_model


@receiver(setting_changed)
def _forget_providers(*, setting: str, **_: Any) -> None:
    """Tests override provider settings; the cached client must follow them."""
    if setting.startswith(("AI_", "OPENAI_")):
        _provider.cache_clear()
