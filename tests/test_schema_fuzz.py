"""schemathesis over the whole OpenAPI schema, against a live server on the real database.

Every operation of `/api/schema/` gets generated requests, valid ones and invalid ones, sent
over HTTP to uvicorn serving `config.asgi` as in production (the whole Django stack: middleware,
authentication, throttles, views, the async event stream, PostgreSQL; work accepted is sent to
the real Redis and simply stays queued: no worker is needed) with the API key of an ordinary user.
What must hold for every one of them: no 5xx, every error is JSON, and what the server answers
matches what the schema promises. Operations that take an id are given the ids of the user's own
objects half of the time, so the fuzzer reaches past 404.

Generation is derandomized, so a run is repeatable (SCHEMA_FUZZ_RANDOM=1 explores new cases);
SCHEMA_FUZZ_EXAMPLES changes how many examples each operation gets per mode (positive, negative).
"""

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from config.celery import app as celery_app
from conftest import child_env
from jobs.models import TaskRecord
from notifications.models import WebhookEndpoint
from prompts.models import Conversation, PromptRequest
from sync.models import Document
from tests.conftest import uvicorn_server
from users.models import Tier

EXAMPLES_PER_MODE = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "16"))
MIN_REQUESTS = 1000
# What the server answers must match the schema. (Whether the schema is as strict as the validation,
# e.g. `minLength` on text that may not be blank, is not checked: drf-spectacular leaves that out.)
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES_PER_MODE,
    deadline=None,
    database=None,  # nothing written to .hypothesis/
    derandomize=not os.environ.get("SCHEMA_FUZZ_RANDOM"),  # set it to explore beyond the usual cases
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzz_server(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """uvicorn on the test database with production settings, less HTTPS and the per-user rate."""
    env = {
        **child_env(django_db_blocker),
        "AI_PROVIDER": "offline",
        "SECURE_SSL_REDIRECT": "0",  # plain http on the loopback
        "API_USER_THROTTLE_RATE": "1000000/min",  # the per-user rate is tested in test_abuse.py
        "TASK_EVENTS_MAX_SECONDS": "1",
        "TASK_EVENTS_KEEPALIVE_SECONDS": "1",
    }
    with uvicorn_server(env, "fuzz-web.log") as base_url:
        yield base_url


@pytest.fixture
def fuzz_user(make_user: Any) -> Any:
    """An ordinary user whose tier lets the fuzzer through: no daily limit or size stands in the way."""
    Tier.objects.update_or_create(
        slug="fuzz",
        defaults={
            "name": "Fuzz",
            "daily_request_limit": 1_000_000,
            "max_prompt_length": 1_000_000,
            "max_in_flight": 1,
            "max_document_bytes": 10_000_000,
            "queue_priority": "low",
        },
    )
    return make_user(tier="fuzz")


def _own_objects(user: Any) -> dict[str, Any]:
    """Path parameters that name the user's own objects, by path prefix."""
    conversation = Conversation.objects.create(owner=user, title="fuzz")
    prompt = PromptRequest.objects.create(owner=user, model="gpt-4o-mini", prompt_text="fuzz", status="FAILED")
    image = PromptRequest.objects.create(owner=user, kind="image", model="gpt-image-1", prompt_text="fuzz")
    document = Document.objects.create(owner=user, title="fuzz", source="text", text="fuzz", status="EMBEDDED")
    webhook = WebhookEndpoint.objects.create(owner=user, url="https://example.com/hook", events=["prompt.completed"])
    # A finished task: its event stream ends at once instead of waiting for news.
    task = TaskRecord.objects.create(name="fuzz.task", queue="maintenance", owner=user, state="SUCCESS")
    return {
        "/api/v1/conversations/{id}/": {"id": conversation.pk},
        "/api/v1/prompts/{id}/": {"id": prompt.pk},
        "/api/v1/images/{id}/": {"id": image.pk},
        "/api/v1/documents/{id}/": {"id": document.pk},
        "/api/v1/webhooks/{id}/": {"id": webhook.pk},
        "/api/v1/tasks/{task_id}/": {"task_id": str(task.pk)},
        "/api/v1/tasks/trigger/{job}/": {"job": "cleanup-cache"},
    }


def _strategy(operation: Any, mode: schemathesis.GenerationMode, known: dict[str, Any]) -> Any:
    generated = operation.as_strategy(generation_mode=mode)
    for prefix, parameters in known.items():
        if operation.path.startswith(prefix):
            return st.one_of(generated, operation.as_strategy(generation_mode=mode, path_parameters=parameters))
    return generated


def _bound(exercise: Any, label: str) -> Any:
    def run(case: schemathesis.Case) -> None:
        exercise(case, label)

    return run


def _json_error_problem(response: Any) -> str | None:
    """Why an error response is not a JSON body, or None if it is one."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    if "json" not in content_type:
        return f"error {response.status_code} with Content-Type {content_type!r}: {response.content[:200]!r}"
    try:
        json.loads(response.content)
    except ValueError:
        return f"error {response.status_code} whose body is not JSON: {response.content[:200]!r}"
    return None


@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_and_every_error_is_json(fuzz_server, fuzz_user):
    schema = schemathesis.openapi.from_url(f"{fuzz_server}/api/schema/")
    known = _own_objects(fuzz_user)
    auth = {"X-API-Key": fuzz_user.api_key}
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    problems: dict[str, str] = {}
    started = time.monotonic()

    def exercise(case: schemathesis.Case, label: str) -> None:
        response = case.call(base_url=fuzz_server, headers=auth, timeout=30)
        sent[label] += 1
        statuses[response.status_code] += 1
        problem = _json_error_problem(response)
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except FailureGroup as failures:  # every failed check, collected so one run reports them all
            problem = (problem or "") + str(failures)
        if problem:
            problems.setdefault(f"{label} {response.status_code}", f"{problem}\n{case.as_curl_command()}")

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            label = f"{operation.label} [{mode}]"
            strategy = _strategy(operation, mode, known)
            try:
                SETTINGS(hypothesis.given(case=strategy)(_bound(exercise, label)))()
            except hypothesis.errors.Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                assert mode == schemathesis.GenerationMode.NEGATIVE, label

    celery_app.control.purge()  # accepted work stays queued: do not leave it to the next worker
    elapsed = time.monotonic() - started
    summary = f"{sum(sent.values())} requests in {elapsed:.0f} s over {len(sent)} operation-modes; {dict(statuses)}"
    assert not problems, summary + "\n\n" + "\n\n".join(f"{key}:\n{text}" for key, text in sorted(problems.items()))
    assert sum(sent.values()) >= MIN_REQUESTS, summary
    assert not [code for code in statuses if code >= 500], summary
    reached = {label.rsplit(" [", 1)[0] for label in sent}
    assert len(reached) == len(list(schema.get_all_operations())), summary
    print(summary)
