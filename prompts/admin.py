"""Admin for prompt requests and responses."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from prompts.models import PromptRequest, PromptResponse
from prompts.services import PromptConflict, prompt_request_cancel, prompt_request_retry
from users.exceptions import DailyLimitExceeded


class PromptResponseInline(admin.StackedInline):
    model = PromptResponse
    readonly_fields = [
        "text",
        "result",
        "provider",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "duration_ms",
        "task_id",
        "created_at",
    ]
    extra = 0
    can_delete = False


@admin.register(PromptRequest)
class PromptRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "kind", "model", "status", "created_at", "completed_at"]
    list_filter = ["status", "kind", "model", ("owner", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["owner"]
    search_fields = ["prompt_text", "owner__username", "=task_id"]
    readonly_fields = ["owner", "task_id", "created_at", "started_at", "completed_at"]
    date_hierarchy = "created_at"
    inlines = [PromptResponseInline]
    actions = ["retry", "cancel"]

    @admin.action(description="Retry the selected failed or cancelled requests")
    def retry(self, request: HttpRequest, queryset: QuerySet[PromptRequest]) -> None:
        self._each(request, queryset, prompt_request_retry, "retried")

    @admin.action(description="Cancel the selected pending or running requests")
    def cancel(self, request: HttpRequest, queryset: QuerySet[PromptRequest]) -> None:
        self._each(request, queryset, prompt_request_cancel, "cancelled")

    def _each(self, request: HttpRequest, queryset: QuerySet[PromptRequest], service, done: str) -> None:
        succeeded, skipped = 0, []
        for prompt_id in queryset.values_list("pk", flat=True):
            try:
                service(request_id=prompt_id, by=request.user)
                succeeded += 1
            except (PromptConflict, DailyLimitExceeded) as exc:
                reason = exc.detail["detail"] if isinstance(exc, DailyLimitExceeded) else str(exc)
                skipped.append(f"#{prompt_id}: {reason}")
        self.message_user(request, f"{succeeded} request(s) {done}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, "Skipped " + "; ".join(skipped), messages.WARNING)


@admin.register(PromptResponse)
class PromptResponseAdmin(admin.ModelAdmin):
    list_display = ["request", "provider", "model", "prompt_tokens", "completion_tokens", "duration_ms", "created_at"]
    list_filter = ["provider", "model"]
    list_select_related = ["request"]
    readonly_fields = [f.name for f in PromptResponse._meta.fields]
