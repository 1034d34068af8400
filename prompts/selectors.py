"""Reads for prompt requests, always scoped to who asks."""

from django.db.models import OuterRef, QuerySet, Subquery

from jobs.models import TaskRecord
from prompts.models import Conversation, PromptRequest
from users.models import User


def prompt_request_list(*, user: User) -> QuerySet[PromptRequest]:
    """The requests `user` may see (their own, or all for staff), with their task's progress."""
    task = TaskRecord.objects.filter(pk=OuterRef("task_id"))
    queryset = PromptRequest.objects.select_related("response").annotate(
        progress_percent=Subquery(task.values("progress_percent")[:1]),
        progress_message=Subquery(task.values("progress_message")[:1]),
    )
    return queryset if user.is_staff else queryset.filter(owner=user)


def conversation_list(*, user: User) -> QuerySet[Conversation]:
    """The conversations `user` may see: their own, or all for staff."""
    queryset = Conversation.objects.all()
    return queryset if user.is_staff else queryset.filter(owner=user)


def conversation_turns(*, conversation: Conversation) -> QuerySet[PromptRequest]:
    """A conversation's turns, oldest first, with their responses."""
    return conversation.turns.select_related("response").order_by("created_at", "id")
