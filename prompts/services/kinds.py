"""Accepting the other kinds of work (translations, images) and managing conversations."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from prompts.models import Conversation, PromptRequest
from prompts.services.requests import request_accept, tier_models
from users.models import User
from users.services import user_tier

# ISO 639-1 codes accepted as languages.
LANGUAGES = frozenset(
    (
        "aa ab af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el "
        "en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it "
        "iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt "
        "my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl "
        "sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo "
        "za zh zu"
    ).split()
)  # fmt: skip
MAX_TEXTS = 50
MAX_TARGET_LANGUAGES = 10


def translation_request_create(
    *, user: User, texts: list[str], source_lang: str, target_langs: list[str], model: str | None = None
) -> PromptRequest:
    """Accept a batch translation: one request, one task, one provider call per target language."""
    tier = user_tier(user)
    model = model or settings.AI_DEFAULT_CHAT_MODEL
    errors: dict[str, str] = {}
    if model not in tier_models(tier):
        errors["model"] = f"Unknown or unavailable model {model!r} for the {tier.name} tier."
    if source_lang in target_langs:
        errors["target_langs"] = f"{source_lang!r} is the source language; it cannot also be a target."
    total = sum(len(text) for text in texts)
    if total > tier.max_prompt_length:
        errors["texts"] = (
            f"The texts are {total} characters together; the {tier.name} tier allows {tier.max_prompt_length}."
        )
    if errors:
        raise ValidationError(errors)
    return request_accept(
        user=user,
        tier=tier,
        kind=PromptRequest.Kind.TRANSLATION,
        model=model,
        prompt_text="",
        input={"texts": texts, "source_lang": source_lang, "target_langs": target_langs},
    )


def image_request_create(*, user: User, prompt: str, size: str, steps: int) -> PromptRequest:
    """Accept an image generation; the task reports progress while it runs."""
    tier = user_tier(user)
    if len(prompt) > tier.max_prompt_length:
        raise ValidationError({"prompt": f"The {tier.name} tier allows at most {tier.max_prompt_length} characters."})
    return request_accept(
        user=user,
        tier=tier,
        kind=PromptRequest.Kind.IMAGE,
        model=settings.AI_IMAGE_MODEL,
        prompt_text=prompt,
        input={"size": size, "steps": steps},
    )


def conversation_create(*, user: User, title: str = "") -> Conversation:
    """Start a conversation; chat prompts that name it become its turns."""
    return Conversation.objects.create(owner=user, title=title)


def conversations_archive(*, idle_days: int) -> int:
    """Archive conversations without a turn for `idle_days`, in one UPDATE (they stay readable)."""
    cutoff = timezone.now() - timedelta(days=idle_days)
    return Conversation.objects.filter(archived_at__isnull=True, updated_at__lt=cutoff).update(
        archived_at=timezone.now()
    )
