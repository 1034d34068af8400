"""Admin for prompt requests and responses."""

from django.contrib import admin

from prompts.models import PromptRequest, PromptResponse


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


@admin.register(PromptResponse)
class PromptResponseAdmin(admin.ModelAdmin):
    list_display = ["request", "provider", "model", "prompt_tokens", "completion_tokens", "duration_ms", "created_at"]
    list_filter = ["provider", "model"]
    list_select_related = ["request"]
    readonly_fields = [f.name for f in PromptResponse._meta.fields]
