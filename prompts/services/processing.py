"""Doing the work of a request in the worker: one path for every kind, a runner per kind."""

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from ai import providers
from jobs.services import task_partial_text_publish, task_progress_set
from prompts.models import PromptRequest, PromptResponse
from prompts.services.query import query_cache_get, query_cache_key, query_cache_store
from prompts.services.requests import prompt_event_emit, prompt_request_fail
from sync.selectors import chunk_search
from users.services import usage_record_finished

logger = logging.getLogger(__name__)
Status = PromptRequest.Status
HISTORY_TURNS = 20  # how many earlier turns of a conversation the provider sees


class RequestCancelled(Exception):
    """The request was cancelled while its work ran; stop and store nothing."""


@dataclass
class Outcome:
    """What a runner produced, ready to be stored as the request's one response."""

    provider: str
    model: str
    text: str = ""
    result: dict[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_ms: int = 0
    png: bytes | None = None


def prompt_request_process(*, request_id: int, task_id: str | None = None) -> PromptRequest | None:
    """Run a request once: mark it started, do the work (no lock held), store the outcome.

    Safe to run twice, even at the same time: the row lock and the one-to-one response make a
    second answer impossible, and a request already final is returned untouched.
    """
    request = _start(request_id)
    if request is None or request.is_final:
        return request
    try:
        outcome = RUNNERS[request.kind](request, task_id)
    except providers.ProviderError as exc:
        return prompt_request_fail(request_id=request_id, error=str(exc))
    except RequestCancelled:
        return PromptRequest.objects.get(pk=request_id)
    except providers.BudgetExhausted as exc:
        # Not a failure: waiting again (the task comes back after a countdown), and saying why.
        PromptRequest.objects.filter(pk=request_id, status=Status.IN_PROGRESS).update(status=Status.PENDING)
        if task_id:
            task_progress_set(task_id=task_id, percent=0, message=str(exc))
        raise
    return _store(request_id, task_id, outcome)


_FINAL = [str(status) for status in PromptRequest.FINAL_STATUSES]


def _set_unless_final(request_id: int, assignments: str, params: list[Any]) -> PromptRequest | None:
    """Apply `assignments` to the request unless it is final; the row as written, else None.

    One statement, where select_for_update() and save() took four (BEGIN, SELECT, UPDATE,
    COMMIT): the row lock is the UPDATE's own, its WHERE the status check.
    """
    sql = f"UPDATE {PromptRequest._meta.db_table} SET {assignments} WHERE id = %s AND status <> ALL(%s) RETURNING "
    written = list(PromptRequest.objects.raw(sql + _columns(), [*params, request_id, _FINAL]))
    return written[0] if written else None


@functools.cache
def _columns() -> str:
    """The request's columns, named: a prepared statement keeps its result's shape across migrations."""
    return ", ".join(connection.ops.quote_name(field.column) for field in PromptRequest._meta.concrete_fields)


def _start(request_id: int) -> PromptRequest | None:
    """Mark the request IN_PROGRESS unless final; the row as it is now (None if it is gone)."""
    started = _set_unless_final(
        request_id, "status = %s, started_at = COALESCE(started_at, %s)", [str(Status.IN_PROGRESS), timezone.now()]
    )
    return started or PromptRequest.objects.filter(pk=request_id).first()


def _store(request_id: int, task_id: str | None, outcome: Outcome) -> PromptRequest:
    file_name = ""
    if outcome.png is not None:  # written before the transaction; removed again if not used
        file_name = default_storage.save(f"images/{timezone.now():%Y/%m/%d}/{request_id}.png", ContentFile(outcome.png))
    with transaction.atomic():
        # Not if final already: finished by a concurrent run, or cancelled meanwhile.
        request = _set_unless_final(
            request_id, "status = %s, error = '', completed_at = %s", [str(Status.COMPLETED), timezone.now()]
        )
        if request is not None:
            PromptResponse.objects.create(
                request=request,
                text=outcome.text,
                result=outcome.result,
                file=file_name,
                provider=outcome.provider,
                model=outcome.model,
                prompt_tokens=outcome.prompt_tokens,
                completion_tokens=outcome.completion_tokens,
                duration_ms=outcome.duration_ms,
                task_id=task_id,
            )
            usage_record_finished(
                user_id=request.owner_id,
                day=timezone.localdate(request.created_at),
                completed=True,
                tokens=outcome.prompt_tokens + outcome.completion_tokens,
                duration_ms=outcome.duration_ms,
            )
            prompt_event_emit(request=request, completed=True)
            return request
    if file_name:
        default_storage.delete(file_name)
    return PromptRequest.objects.get(pk=request_id)


# Runners: one per kind -------------------------------------------------------------------


def _run_chat(request: PromptRequest, task_id: str | None) -> Outcome:
    messages = [*_history(request), {"role": "user", "content": request.prompt_text}]
    answer = providers.chat(messages, model=request.model, on_text=_text_publisher(task_id))
    return Outcome(
        provider=answer.provider,
        model=answer.model,
        text=answer.text,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        duration_ms=answer.duration_ms,
    )


def _text_publisher(task_id: str | None) -> Callable[[str], None] | None:
    """Publishes the growing answer to the task's events at most every AI_STREAM_PUBLISH_SECONDS."""
    if not task_id or not settings.AI_STREAM_CHAT:
        return None
    last = [0.0]

    def publish(text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= settings.AI_STREAM_PUBLISH_SECONDS:
            last[0] = now
            task_partial_text_publish(task_id=task_id, text=text)

    return publish


def _history(request: PromptRequest) -> list[dict[str, str]]:
    """Earlier completed turns of the request's conversation, oldest first."""
    if request.conversation_id is None:
        return []
    turns = (
        PromptRequest.objects.filter(
            conversation_id=request.conversation_id, status=Status.COMPLETED, created_at__lt=request.created_at
        )
        .select_related("response")
        .order_by("-created_at")[:HISTORY_TURNS]
    )
    messages: list[dict[str, str]] = []
    for turn in reversed(turns):
        messages += [
            {"role": "user", "content": turn.prompt_text},
            {"role": "assistant", "content": turn.response.text},
        ]
    return messages


def _run_translation(request: PromptRequest, task_id: str | None) -> Outcome:
    texts, source = request.input["texts"], request.input["source_lang"]
    translations: dict[str, list[str]] = {}
    outcome = Outcome(provider="", model="")
    for target in request.input["target_langs"]:  # one call per language, all texts at once
        answer = providers.translate(texts, source=source, target=target, model=request.model)
        translations[target] = answer.texts
        outcome.provider, outcome.model = answer.provider, answer.model
        outcome.prompt_tokens += answer.prompt_tokens
        outcome.completion_tokens += answer.completion_tokens
        outcome.duration_ms += answer.duration_ms
    outcome.result = {"source_lang": source, "translations": translations}
    return outcome


def _run_image(request: PromptRequest, task_id: str | None) -> Outcome:
    def progress(percent: int, message: str) -> None:
        if task_id:
            task_progress_set(task_id=task_id, percent=percent, message=message)

    def on_progress(fraction: float) -> None:
        if PromptRequest.objects.filter(pk=request.pk, status=Status.CANCELLED).exists():
            raise RequestCancelled
        progress(5 + int(80 * fraction), "generating")

    progress(5, "generating")
    image = providers.image(
        request.prompt_text, size=request.input["size"], steps=request.input["steps"], on_progress=on_progress
    )
    progress(90, "storing")
    return Outcome(
        provider=image.provider,
        model=image.model,
        duration_ms=image.duration_ms,
        png=image.png,
        result={"size": request.input["size"], "bytes": len(image.png)},
    )


QUERY_INSTRUCTION = (
    "Answer the question using only the numbered excerpts from the user's documents below, citing them "
    "as [n]. If they do not contain the answer, say that the documents do not answer it.\n\n"
)


def _run_query(request: PromptRequest, task_id: str | None) -> Outcome:
    question, top_k = request.input["question"], request.input["top_k"]
    key = query_cache_key(user=request.owner, question=question, top_k=top_k, model=request.model)
    cached = query_cache_get(owner_id=request.owner_id, key=key)
    if cached is not None:
        return Outcome(
            provider=cached.provider, model=cached.model, text=cached.answer,
            result={"chunks": cached.chunks, "cached": True},
        )  # fmt: skip
    hits = chunk_search(user=request.owner, query=question, top_k=top_k)
    context = "\n\n".join(f"[{n}] {hit.document_title}: {hit.text}" for n, hit in enumerate(hits, start=1))
    messages = [{"role": "system", "content": QUERY_INSTRUCTION + context}, {"role": "user", "content": question}]
    answer = providers.chat(messages, model=request.model)
    chunks = [{"document_id": h.document_id, "chunk_id": h.chunk_id, "score": round(h.score, 4)} for h in hits]
    query_cache_store(
        owner_id=request.owner_id, key=key, answer=answer.text, chunks=chunks,
        provider=answer.provider, model=answer.model,
    )  # fmt: skip
    return Outcome(
        provider=answer.provider, model=answer.model, text=answer.text, result={"chunks": chunks, "cached": False},
        prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens, duration_ms=answer.duration_ms,
    )  # fmt: skip


RUNNERS: dict[str, Callable[[PromptRequest, str | None], Outcome]] = {
    PromptRequest.Kind.QUERY: _run_query,
    PromptRequest.Kind.CHAT: _run_chat,
    PromptRequest.Kind.TRANSLATION: _run_translation,
    PromptRequest.Kind.IMAGE: _run_image,
}
