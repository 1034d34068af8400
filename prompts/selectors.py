"""Reads for prompt requests, always scoped to who asks."""

from django.db.models import QuerySet

from prompts.models import PromptRequest
from users.models import User


def prompt_request_list(*, user: User) -> QuerySet[PromptRequest]:
    """The requests `user` may see: their own, or all for staff."""
    queryset = PromptRequest.objects.select_related("response")
    return queryset if user.is_staff else queryset.filter(owner=user)
