"""Fault tests: break the real servers on purpose and check that nothing accepted is lost."""

import time
import uuid

import pytest

from config import embedded
from conftest import wait_until
from jobs.models import TaskRecord
from jobs.services import task_records_sweep
from prompts.models import PromptRequest


def test_broker_down_at_post_time_accepts_and_completes_once_it_returns(
    worker, make_user, client_for, client, settings
):
    if not settings.USES_EMBEDDED_SERVERS:
        pytest.skip("stops and starts the embedded Redis")
    api = client_for(make_user())
    text = f"written while the broker is down {uuid.uuid4().hex}"

    embedded.valkey_stop(settings.EMBEDDED_DIR)
    try:
        started = time.monotonic()
        response = api.post("/api/v1/prompts/", {"prompt_text": text}, format="json")
        elapsed = time.monotonic() - started
        health = client.get("/api/v1/health/")
    finally:
        embedded.valkey_start(settings.EMBEDDED_DIR, durable=False)

    assert response.status_code == 202
    assert elapsed < 10, "accepting must not hang on a dead broker"
    assert health.status_code == 503 and not health.json()["broker"]["ok"]
    accepted = response.json()
    record = TaskRecord.objects.get(pk=accepted["task_id"])
    assert record.state == "WAITING" and record.sends == 0
    assert PromptRequest.objects.get(pk=accepted["id"]).status == "PENDING"

    settings.JOBS_RESEND_AFTER_SECONDS = 0
    # The sweep sends it, unless another task finishing in the same queue released it first.
    assert task_records_sweep()["resent"] <= 1

    def completed():
        return api.get(f"/api/v1/prompts/{accepted['id']}/").json()["status"] == "COMPLETED"

    wait_until(completed, timeout=60, what="the swept prompt to complete")
    assert TaskRecord.objects.get(pk=accepted["task_id"]).sends == 1
