"""Provider budgets on the real Redis: atomic under threads, tokens settled, pauses shared, seeded rows."""

import threading
import time
import uuid

import pytest

from ai.budgets import (
    BudgetExhausted,
    budget_acquire,
    budget_countdown,
    budget_limits,
    budget_limits_forget,
    budget_pause,
    budget_reset,
    budget_settle,
    budget_usage,
)
from ai.models import ProviderBudget
from ai.services import budgets_ensure


@pytest.fixture
def budget(db, settings):
    """A budget of its own model name (so no other test's window counts), read afresh each call."""
    settings.AI_BUDGET_REFRESH_SECONDS = 0
    model = f"model-{uuid.uuid4().hex[:8]}"

    def make(rpm: int = 0, tpm: int = 0) -> str:
        ProviderBudget.objects.create(provider="openai", model=model, requests_per_minute=rpm, tokens_per_minute=tpm)
        budget_limits_forget()
        return model

    yield make
    budget_reset("openai", model)
    budget_limits_forget()


def test_a_budget_grants_its_requests_per_minute_then_says_how_long_to_wait(budget):
    model = budget(rpm=5)

    for _ in range(5):
        budget_acquire("openai", model, tokens=10, max_wait=0)
    with pytest.raises(BudgetExhausted) as refused:
        budget_acquire("openai", model, tokens=10, max_wait=0)

    assert 55 < refused.value.retry_after <= 61.1, "the oldest call leaves the window a minute (+1 s) after it"
    assert "openai budget of " + model in str(refused.value)
    assert budget_usage("openai", model).requests == 5


def test_fifty_threads_at_once_never_take_more_than_the_limit(budget, settings):
    model = budget(rpm=20)
    settings.AI_BUDGET_REFRESH_SECONDS = 3600  # the row is not committed: the threads use the limits read here
    budget_limits("openai", model)
    granted, barrier, lock = [], threading.Barrier(50), threading.Lock()

    def take() -> None:
        barrier.wait()
        try:
            budget_acquire("openai", model, tokens=1, max_wait=0)
        except BudgetExhausted:
            return
        with lock:
            granted.append(1)

    threads = [threading.Thread(target=take) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(granted) == 20
    assert budget_usage("openai", model).requests == 20


def test_tokens_are_reserved_up_front_and_settled_with_what_the_call_used(budget):
    model = budget(tpm=1000)

    first = budget_acquire("openai", model, tokens=600, max_wait=0)
    with pytest.raises(BudgetExhausted):
        budget_acquire("openai", model, tokens=600, max_wait=0)
    budget_settle(first, tokens=100)  # the answer was shorter than reserved
    budget_acquire("openai", model, tokens=600, max_wait=0)

    assert budget_usage("openai", model).tokens == 700


def test_a_call_larger_than_the_whole_budget_waits_for_an_empty_window_not_for_ever(budget):
    model = budget(tpm=100)

    budget_acquire("openai", model, tokens=500, max_wait=0)  # alone in the window: let through
    with pytest.raises(BudgetExhausted) as refused:
        budget_acquire("openai", model, tokens=500, max_wait=0)

    assert refused.value.retry_after <= 61.1


def test_a_pause_holds_every_caller_until_it_ends(budget):
    model = budget()  # no limits: a 429's pause applies all the same

    budget_pause("openai", model, 1.5)
    with pytest.raises(BudgetExhausted) as refused:
        budget_acquire("openai", model, tokens=1, max_wait=0)
    started = time.monotonic()
    budget_acquire("openai", model, tokens=1, max_wait=5)

    assert 1.0 < refused.value.retry_after <= 1.5
    assert time.monotonic() - started > 1.0, "the second caller waited for the pause to end"
    assert budget_usage("openai", model).paused_seconds == 0


def test_a_shorter_pause_never_cuts_a_longer_one(budget):
    model = budget()

    budget_pause("openai", model, 30)
    budget_pause("openai", model, 1)

    assert budget_usage("openai", model).paused_seconds > 25


def test_a_task_comes_back_after_the_wait_but_never_later_than_the_cap(settings):
    settings.AI_BUDGET_MAX_COUNTDOWN_SECONDS = 65

    assert 10 <= budget_countdown(BudgetExhausted("openai", "m", 10)) <= 11
    assert budget_countdown(BudgetExhausted("openai", "m", 600)) == 65


def test_settings_seed_missing_budgets_and_never_overwrite_the_admins_edits(db, settings):
    settings.AI_BUDGETS = {"openai/gpt-seeded": {"rpm": 500, "tpm": 200_000}, "openai/*": {"rpm": 100}}

    assert budgets_ensure() == 2
    seeded = ProviderBudget.objects.get(provider="openai", model="gpt-seeded")
    assert (seeded.requests_per_minute, seeded.tokens_per_minute) == (500, 200_000)
    seeded.requests_per_minute = 50
    seeded.save()
    budgets_ensure()

    assert ProviderBudget.objects.get(pk=seeded.pk).requests_per_minute == 50
    assert ProviderBudget.objects.filter(provider="openai", model="*").count() == 1


def test_a_model_without_its_own_row_counts_against_the_providers_star_row(budget, db):
    ProviderBudget.objects.create(provider="openai", model="*", requests_per_minute=2)
    model = f"other-{uuid.uuid4().hex[:6]}"
    budget_limits_forget()
    try:
        budget_acquire("openai", model, tokens=1, max_wait=0)
        budget_acquire("openai", model, tokens=1, max_wait=0)
        with pytest.raises(BudgetExhausted):
            budget_acquire("openai", model, tokens=1, max_wait=0)
    finally:
        budget_reset("openai", model)


def test_the_admin_lists_budgets_with_their_use_and_edits_them(budget, client, django_user_model):
    model = budget(rpm=10, tpm=5000)
    budget_acquire("openai", model, tokens=250, max_wait=0)
    staff = django_user_model.objects.create_user("ops", password="pw", is_staff=True, is_superuser=True)
    client.force_login(staff)

    page = client.get("/admin/ai/providerbudget/")

    assert page.status_code == 200
    text = page.content.decode()
    assert model in text and "Requests, last minute" in text
    assert "1 (10 %)" in text and "250 (5 %)" in text
