"""Admin for provider budgets: edit the limits, see their use now, reset a window."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from redis import RedisError

from ai.budgets import Usage, budget_limits_forget, budget_reset, budget_usage
from ai.models import ProviderBudget


@admin.register(ProviderBudget)
class ProviderBudgetAdmin(admin.ModelAdmin):
    list_display = [
        "provider",
        "model",
        "requests_per_minute",
        "requests_last_minute",
        "tokens_per_minute",
        "tokens_last_minute",
        "paused_for",
        "enabled",
        "updated_at",
    ]
    list_editable = ["requests_per_minute", "tokens_per_minute", "enabled"]
    list_filter = ["provider", "enabled"]
    search_fields = ["provider", "model"]
    actions = ["reset_window"]

    def _usage(self, budget: ProviderBudget) -> Usage | None:
        if budget.model == "*":
            return None  # counted per model, under each model's own name
        if not hasattr(budget, "_usage"):  # read once per row and page view, kept on the row itself
            try:
                budget._usage = budget_usage(budget.provider, budget.model)
            except RedisError:
                budget._usage = None
        return budget._usage

    @admin.display(description="Requests, last minute")
    def requests_last_minute(self, budget: ProviderBudget) -> str:
        usage = self._usage(budget)
        return "-" if usage is None else _share(usage.requests, budget.requests_per_minute)

    @admin.display(description="Tokens, last minute")
    def tokens_last_minute(self, budget: ProviderBudget) -> str:
        usage = self._usage(budget)
        return "-" if usage is None else _share(usage.tokens, budget.tokens_per_minute)

    @admin.display(description="Paused for")
    def paused_for(self, budget: ProviderBudget) -> str:
        usage = self._usage(budget)
        return f"{usage.paused_seconds:.0f} s" if usage and usage.paused_seconds else "-"

    def save_model(self, request: HttpRequest, obj: ProviderBudget, form: object, change: bool) -> None:
        super().save_model(request, obj, form, change)
        budget_limits_forget()  # workers pick the change up within AI_BUDGET_REFRESH_SECONDS

    @admin.action(description="Reset the current window and pause of the selected budgets")
    def reset_window(self, request: HttpRequest, queryset: QuerySet[ProviderBudget]) -> None:
        for budget in queryset:
            budget_reset(budget.provider, budget.model)
        self.message_user(request, f"Reset {queryset.count()} budget window(s).", messages.SUCCESS)


def _share(used: int, limit: int) -> str:
    if not limit:
        return f"{used:,}"
    return f"{used:,} ({100 * used // limit} %)"
