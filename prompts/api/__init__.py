"""The prompts app's API: chat prompts, translations, images, conversations."""

from prompts.api.kinds import ConversationViewSet, ImageFileView, ImageView, QueryView, TranslationView
from prompts.api.prompts import PromptViewSet

__all__ = ["ConversationViewSet", "ImageFileView", "ImageView", "PromptViewSet", "QueryView", "TranslationView"]
