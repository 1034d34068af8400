"""Prompt services, split by sub-domain; import them from here."""

from prompts.services.kinds import (
    LANGUAGES,
    MAX_TARGET_LANGUAGES,
    MAX_TEXTS,
    conversation_create,
    conversations_archive,
    image_request_create,
    translation_request_create,
)
from prompts.services.processing import RequestCancelled, prompt_request_process
from prompts.services.query import query_cache_clean, query_request_create
from prompts.services.requests import (
    PROCESS_TASK,
    PromptConflict,
    prompt_request_cancel,
    prompt_request_create,
    prompt_request_fail,
    prompt_request_retry,
    request_accept,
    tier_models,
    user_statistics_recompute,
)

__all__ = [
    "LANGUAGES",
    "MAX_TARGET_LANGUAGES",
    "MAX_TEXTS",
    "PROCESS_TASK",
    "PromptConflict",
    "RequestCancelled",
    "conversation_create",
    "conversations_archive",
    "image_request_create",
    "prompt_request_cancel",
    "prompt_request_create",
    "prompt_request_fail",
    "prompt_request_process",
    "prompt_request_retry",
    "query_cache_clean",
    "query_request_create",
    "request_accept",
    "tier_models",
    "translation_request_create",
    "user_statistics_recompute",
]
