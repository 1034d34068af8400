"""The provider wrapper: chat (later embeddings and images) over the `openai` SDK, or offline.

Works with any OpenAI-compatible server through OPENAI_BASE_URL. Retries on 429, 5xx,
connection errors and timeouts are the SDK's own: exponential backoff with jitter, honouring
Retry-After, AI_MAX_RETRIES times. Whatever still fails becomes a ProviderError with a
readable message. Knows nothing of users, tiers or tasks.
"""

import hashlib
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import openai
from django.conf import settings


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


class Provider(Protocol):
    name: str

    def chat(self, messages: list[dict[str, str]], *, model: str) -> ChatResult: ...


class OpenAIProvider:
    """Any server that speaks the OpenAI protocol."""

    name = "openai"

    def __init__(self) -> None:
        self._client = openai.OpenAI(
            api_key=settings.OPENAI_API_KEY or "not-needed",
            base_url=settings.OPENAI_BASE_URL or None,
            timeout=settings.AI_TIMEOUT_SECONDS,
            max_retries=settings.AI_MAX_RETRIES,
        )

    def chat(self, messages: list[dict[str, str]], *, model: str) -> ChatResult:
        started = time.monotonic()
        try:
            completion = self._client.chat.completions.create(model=model, messages=messages)
            text = completion.choices[0].message.content or ""
        except openai.APITimeoutError:
            raise ProviderError(
                f"The provider did not answer within {settings.AI_TIMEOUT_SECONDS:g} s "
                f"({settings.AI_MAX_RETRIES + 1} tries)."
            ) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(f"Could not reach the provider: {exc}") from None
        except openai.APIStatusError as exc:
            raise ProviderError(f"The provider answered HTTP {exc.status_code}: {_error_message(exc)}") from None
        except (openai.APIError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderError(f"The provider's answer could not be read: {type(exc).__name__}: {exc}") from None
        usage = completion.usage
        return ChatResult(
            text=text,
            provider=self.name,
            model=completion.model or model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            duration_ms=int((time.monotonic() - started) * 1000),
        )


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    return (error.get("message") if isinstance(error, dict) else None) or exc.message


class OfflineProvider:
    """Deterministic answers with no network, so the demo runs anywhere; marked as offline."""

    name = "offline"
    model = "offline-echo-1"

    def chat(self, messages: list[dict[str, str]], *, model: str) -> ChatResult:
        started = time.monotonic()
        question = messages[-1]["content"] if messages else ""
        digest = hashlib.sha256(question.encode()).hexdigest()[:8]
        words = question.split()
        summary = " ".join(words[:40]) + (" …" if len(words) > 40 else "")
        text = f"[offline provider, no model was called] You asked ({len(words)} words, id {digest}): {summary}"
        return ChatResult(
            text=text,
            provider=self.name,
            model=self.model,
            prompt_tokens=sum(len(m["content"].split()) for m in messages),
            completion_tokens=len(text.split()),
            duration_ms=int((time.monotonic() - started) * 1000),
        )


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


def chat(messages: list[dict[str, str]], *, model: str) -> ChatResult:
    """One chat completion with the configured provider."""
    return get_provider().chat(messages, model=model)
