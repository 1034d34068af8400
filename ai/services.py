"""Budget rows: seeded from settings, read by the admin and the dashboard."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from redis import RedisError

from ai.budgets import Usage, budget_usage
from ai.models import ProviderBudget


def budgets_from_settings() -> list[ProviderBudget]:
    """AI_BUDGETS ({"provider/model": {"rpm": N, "tpm": N}}) as unsaved rows."""
    rows = []
    for name, limits in settings.AI_BUDGETS.items():
        provider, _, model = name.partition("/")
        if not provider or not model:
            raise ValueError(f'AI_BUDGETS keys look like "openai/gpt-4o-mini" or "openai/*", not {name!r}.')
        rows.append(
            ProviderBudget(
                provider=provider,
                model=model,
                requests_per_minute=int(limits.get("rpm", 0)),
                tokens_per_minute=int(limits.get("tpm", 0)),
                note="from AI_BUDGETS",
            )
        )
    return rows


def budgets_ensure() -> int:
    """Create the budgets of AI_BUDGETS that have no row yet; rows edited in the admin are kept."""
    rows = budgets_from_settings()
    created = ProviderBudget.objects.bulk_create(rows, ignore_conflicts=True)
    return len(created)


@dataclass(frozen=True)
class BudgetState:
    """A budget row with its use in the current window (None when Redis cannot be read)."""

    budget: ProviderBudget
    usage: Usage | None

    @property
    def requests_percent(self) -> int | None:
        limit = self.budget.requests_per_minute
        return None if self.usage is None or not limit else min(100, round(100 * self.usage.requests / limit))

    @property
    def tokens_percent(self) -> int | None:
        limit = self.budget.tokens_per_minute
        return None if self.usage is None or not limit else min(100, round(100 * self.usage.tokens / limit))


def budget_states() -> list[BudgetState]:
    """Every budget row and its use now, for the admin and the dashboard."""
    states = []
    for budget in ProviderBudget.objects.all():
        try:
            usage = budget_usage(budget.provider, budget.model) if budget.model != "*" else None
        except RedisError:
            usage = None
        states.append(BudgetState(budget, usage))
    return states


def budgets_panel() -> dict[str, Any]:
    """Each budget's use of the last minute against its limits, as a dashboard table."""
    rows = []
    for state in budget_states():
        budget, usage = state.budget, state.usage
        rows.append(
            [
                str(budget),
                _use(usage.requests if usage else None, budget.requests_per_minute),
                _use(usage.tokens if usage else None, budget.tokens_per_minute),
                f"{usage.paused_seconds:.0f} s" if usage and usage.paused_seconds else "-",
                "yes" if budget.enabled else "no",
            ]
        )
    return {
        "title": "Provider budgets, last minute",
        "columns": ["Provider/model", "Requests (limit)", "Tokens (limit)", "Paused for", "Enabled"],
        "rows": rows,
    }


def _use(used: int | None, limit: int) -> str:
    shown = "-" if used is None else f"{used:,}"
    return f"{shown} / {limit:,}" if limit else f"{shown} / no limit"
