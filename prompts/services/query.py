"""Questions answered from the asker's own documents, with a cache for repeated questions."""

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from prompts.models import PromptRequest, QueryCache
from prompts.services.requests import request_accept, tier_models
from sync.selectors import documents_fingerprint, search_top_k
from users.models import User
from users.services import user_tier


def query_request_create(*, user: User, question: str, top_k: int | None = None) -> PromptRequest:
    """Accept a question: retrieval over the user's chunks and a chat call, in the background."""
    from django.core.exceptions import ValidationError

    tier = user_tier(user)
    if len(question) > tier.max_prompt_length:
        raise ValidationError({"question": f"The {tier.name} tier allows at most {tier.max_prompt_length} characters."})
    model = settings.AI_DEFAULT_CHAT_MODEL
    if model not in tier_models(tier):
        model = tier_models(tier)[0]
    return request_accept(
        user=user,
        tier=tier,
        kind=PromptRequest.Kind.QUERY,
        model=model,
        prompt_text=question,
        input={"question": question, "top_k": search_top_k(top_k)},
    )


def query_cache_key(*, user: User, question: str, top_k: int, model: str) -> str:
    """Same question, same documents (as they are now), same model: same key."""
    normalized = " ".join(question.lower().split())
    material = json.dumps([normalized, top_k, model, documents_fingerprint(user=user)])
    return hashlib.sha256(material.encode()).hexdigest()


def query_cache_get(*, owner_id: int, key: str) -> QueryCache | None:
    """A live cached answer, counted as a hit."""
    entry = QueryCache.objects.filter(owner_id=owner_id, key=key, expires_at__gt=timezone.now()).first()
    if entry is not None:
        QueryCache.objects.filter(pk=entry.pk).update(hits=F("hits") + 1)
    return entry


def query_cache_store(*, owner_id: int, key: str, answer: str, chunks: list[dict], provider: str, model: str) -> None:
    """Keep an answer for QUERY_CACHE_TTL_SECONDS (a concurrent identical question may store it first)."""
    QueryCache.objects.update_or_create(
        owner_id=owner_id,
        key=key,
        defaults={
            "answer": answer,
            "chunks": chunks,
            "provider": provider,
            "model": model,
            "expires_at": timezone.now() + timedelta(seconds=settings.QUERY_CACHE_TTL_SECONDS),
        },
    )


def query_cache_clean(*, batch: int = 10_000) -> int:
    """Delete expired cached answers, in batches."""
    deleted = 0
    while True:
        ids = list(QueryCache.objects.filter(expires_at__lte=timezone.now()).values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += QueryCache.objects.filter(pk__in=ids).delete()[0]
