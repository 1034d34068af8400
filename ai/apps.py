from django.apps import AppConfig


class AiConfig(AppConfig):
    name = "ai"
    verbose_name = "AI provider"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        post_migrate.connect(_ensure_budgets, sender=self)


def _ensure_budgets(**_: object) -> None:
    """After every migrate, create the budgets AI_BUDGETS names that are missing (edits are kept)."""
    from ai.services import budgets_ensure

    budgets_ensure()
