"""Provider budgets through real workers: all workers together keep the provider's rate limit.

The local OpenAI-protocol server enforces a requests-per-minute limit of its own (a sliding
window, answering 429 with Retry-After above it), like a real provider.
"""

import json
import threading
import time
import uuid

import pytest

from ai.budgets import budget_pause, budget_reset
from ai.models import ProviderBudget
from conftest import wait_task_final, wait_until
from jobs.events import events_read
from prompts.models import PromptRequest
from sync.models import Document

CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"


@pytest.fixture
def limited_server(openai_server):
    """The session's provider, limited for one test (and its budgets' windows emptied around it)."""

    def limit(rpm: int, window: float) -> object:
        openai_server.rpm_limit, openai_server.rpm_window = rpm, window
        return openai_server

    for model in (CHAT_MODEL, EMBEDDING_MODEL):
        budget_reset("openai", model)
    openai_server.reset()
    yield limit
    openai_server.rpm_limit, openai_server.rpm_window = None, 60.0
    openai_server.reset()
    ProviderBudget.objects.all().delete()
    time.sleep(0.5)  # the worker reads budgets every 0.2 s: none left for the next test
    for model in (CHAT_MODEL, EMBEDDING_MODEL):
        budget_reset("openai", model)


def premium_client(make_user, client_for):
    return client_for(make_user(tier="premium"))  # high daily limit, 25 in flight


def calls_with(server, tag: str) -> list[float]:
    """Arrival times of the provider calls whose body carries `tag`."""
    return sorted(r["at"] for r in server.requests if r["body"] and tag in json.dumps(r["body"]))


def test_two_hundred_prompts_under_a_120_rpm_provider_meet_no_429_and_use_the_allowed_rate(
    worker, make_user, client_for, limited_server
):
    server = limited_server(rpm=120, window=60)
    ProviderBudget.objects.create(provider="openai", model=CHAT_MODEL, requests_per_minute=120)
    time.sleep(0.5)  # the worker's budget table is at most 0.2 s old
    client = premium_client(make_user, client_for)
    tag = uuid.uuid4().hex[:8]

    ids = []
    for n in range(200):
        response = client.post("/api/v1/prompts/", {"prompt_text": f"budgeted {n} {tag}"}, format="json")
        assert response.status_code == 202, response.content
        ids.append(response.json()["id"])
    wait_until(
        lambda: PromptRequest.objects.filter(pk__in=ids, status="COMPLETED").count() == 200,
        timeout=150,
        interval=1,
        what="200 budgeted prompts",
    )

    arrivals = calls_with(server, tag)
    assert len(arrivals) == 200, "one call per prompt: nothing was refused and tried again"
    assert server.rate_limited <= 1, "no worker met a 429 after the first"
    first_minute = sum(1 for at in arrivals if at < arrivals[0] + 60)
    assert first_minute >= 0.9 * 120, f"only {first_minute} calls in the first minute of 120 allowed"
    # Past the first 120, call k may reach the provider once call k-120 has left the minute: how late
    # each came after that moment is the rate lost. At most 6 s (a tenth of the window): >= 90 %.
    lateness = max(arrivals[k] - (arrivals[k - 120] + 60) for k in range(120, 200))
    assert lateness <= 6, f"a call came {lateness:.1f} s after the limit allowed it"


def test_a_429_pauses_every_worker_until_its_retry_after(worker, make_user, client_for, limited_server):
    server = limited_server(rpm=10, window=5)  # no budget configured: the provider's 429 is the first word
    client = premium_client(make_user, client_for)
    tag = uuid.uuid4().hex[:8]

    ids = [
        client.post("/api/v1/prompts/", {"prompt_text": f"paused {n} {tag}"}, format="json").json()["id"]
        for n in range(25)
    ]
    wait_until(
        lambda: PromptRequest.objects.filter(pk__in=ids, status__in=PromptRequest.FINAL_STATUSES).count() == 25,
        timeout=90,
        interval=0.5,
        what="25 prompts to end",
    )

    first_429, retry_after = server.rate_limited_at[0]
    assert retry_after and retry_after >= 3
    during_pause = [at for at in calls_with(server, tag) if first_429 + 1.0 < at < first_429 + retry_after - 0.3]
    assert during_pause == [], "workers kept calling while the provider had asked every caller to wait"
    assert PromptRequest.objects.filter(pk__in=ids, status="COMPLETED").count() >= 10


def test_a_prompt_that_finds_no_budget_waits_as_pending_and_completes_when_there_is(
    worker, make_user, client_for, limited_server
):
    server = limited_server(rpm=None, window=60)
    client = premium_client(make_user, client_for)
    tag = uuid.uuid4().hex[:8]
    budget_pause("openai", CHAT_MODEL, 5)  # longer than the worker waits in place (1 s in tests)

    accepted = client.post("/api/v1/prompts/", {"prompt_text": f"waits {tag}"}, format="json").json()
    waiting = wait_until(
        lambda: (body := client.get(f"/api/v1/tasks/{accepted['task_id']}/").json())["state"] == "RETRY" and body,
        timeout=10,
        what="the task to be re-scheduled",
    )

    assert "Waiting for the openai budget of gpt-4o-mini" in waiting["progress"]["message"]
    assert client.get(f"/api/v1/prompts/{accepted['id']}/").json()["status"] == "PENDING"
    assert wait_task_final(client, accepted["task_id"])["state"] == "SUCCESS"
    assert client.get(f"/api/v1/prompts/{accepted['id']}/").json()["status"] == "COMPLETED"
    assert len(calls_with(server, tag)) == 1, "no call was made during the pause"


def test_a_document_that_finds_no_embedding_budget_is_embedded_once_there_is(
    worker, make_user, client_for, limited_server
):
    server = limited_server(rpm=None, window=60)
    client = premium_client(make_user, client_for)
    tag = uuid.uuid4().hex[:8]
    budget_pause("openai", EMBEDDING_MODEL, 4)

    accepted = client.post("/api/v1/documents/", {"title": "t", "text": f"budget words {tag}"}, format="json")
    assert accepted.status_code == 202, accepted.content
    document_id = accepted.json()["id"]
    wait_until(lambda: Document.objects.get(pk=document_id).status == "EMBEDDED", timeout=30, what="the document")

    assert len(calls_with(server, tag)) == 1


def test_a_prompt_that_waits_for_budget_more_times_than_its_retries_still_completes(
    worker, make_user, client_for, limited_server
):
    """Waiting for the provider's budget is not a failed attempt: a prompt that found none eight
    times (its task allows 5 retries, for database errors) still completes, with one call."""
    server = limited_server(rpm=None, window=60)
    client = premium_client(make_user, client_for)
    tag = uuid.uuid4().hex[:8]
    holding = threading.Event()

    def hold_the_budget() -> None:  # paused for longer than the worker waits in place (1 s)
        while not holding.wait(0.2):
            budget_pause("openai", CHAT_MODEL, 1.6)

    budget_pause("openai", CHAT_MODEL, 1.6)
    holder = threading.Thread(target=hold_the_budget)
    holder.start()
    try:
        accepted = client.post("/api/v1/prompts/", {"prompt_text": f"waits long {tag}"}, format="json").json()
        wait_until(
            lambda: sum(event["state"] == "RETRY" for _, event in events_read(accepted["task_id"])) >= 8,
            timeout=60,
            interval=0.2,
            what="eight waits for the budget",
        )
        assert client.get(f"/api/v1/prompts/{accepted['id']}/").json()["status"] == "PENDING"
    finally:
        holding.set()
        holder.join()

    assert wait_task_final(client, accepted["task_id"])["state"] == "SUCCESS"
    assert client.get(f"/api/v1/prompts/{accepted['id']}/").json()["status"] == "COMPLETED"
    assert len(calls_with(server, tag)) == 1
