"""Provider budgets: how many calls and tokens per minute the workers together may spend."""

from django.db import models


class ProviderBudget(models.Model):
    """Requests and tokens per minute for one model of one provider, shared by all workers.

    `model` "*" applies to every model of the provider that has no row of its own (each model
    still counted on its own). Edits take effect within AI_BUDGET_REFRESH_SECONDS.
    """

    provider = models.CharField(max_length=50, help_text='The provider name, e.g. "openai".')
    model = models.CharField(max_length=100, help_text='The model name, or "*" for any model without its own row.')
    requests_per_minute = models.PositiveIntegerField(default=0, help_text="0: no limit.")
    tokens_per_minute = models.PositiveIntegerField(default=0, help_text="0: no limit.")
    enabled = models.BooleanField(default=True, help_text="A disabled budget lets calls through unlimited.")
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "model"]
        constraints = [models.UniqueConstraint(fields=["provider", "model"], name="ai_budget_unique_provider_model")]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"
