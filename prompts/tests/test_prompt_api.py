"""The prompt API end to end: accepted at once, done by a real worker, scoped to its owner."""

import time
import uuid

import pytest
from celery import current_app as celery_app
from rest_framework.test import APIClient

from conftest import wait_task_final, wait_until
from jobs.models import TaskRecord
from prompts.models import PromptRequest, PromptResponse


def unique(text: str) -> str:
    """Prompt text no other test sends (the fake provider keys its behaviour on the text)."""
    return f"{text} [{uuid.uuid4().hex[:10]}]"


def submit(client, text: str, **extra) -> dict:
    response = client.post("/api/v1/prompts/", {"prompt_text": text, **extra}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def wait_final(client, prompt_id: int, timeout: float = 30) -> dict:
    def final():
        body = client.get(f"/api/v1/prompts/{prompt_id}/").json()
        return body if body["status"] in ("COMPLETED", "FAILED", "CANCELLED") else None

    return wait_until(final, timeout=timeout, what=f"prompt {prompt_id} to finish")


def test_posted_prompt_completes_through_a_real_worker_with_one_response(worker, make_user, client_for, openai_server):
    user = make_user()
    client = client_for(user)
    text = unique("What is a task queue?")

    accepted = submit(client, text)

    assert set(accepted) >= {"id", "status", "task_id", "status_url"}
    assert accepted["status"] == "PENDING"
    done = wait_final(client, accepted["id"])
    assert done["status"] == "COMPLETED", done
    assert done["response"]["text"] == f"echo: {text}"
    assert done["response"]["provider"] == "openai"
    assert done["response"]["model"] == "gpt-4o-mini"
    assert done["response"]["total_tokens"] > 0
    assert done["started_at"] and done["completed_at"]
    assert PromptResponse.objects.filter(request_id=accepted["id"]).count() == 1
    assert openai_server.calls_for(text) == 1

    task = wait_task_final(client, accepted["task_id"])
    assert task["state"] == "SUCCESS"
    assert task["name"] == "prompts.process_prompt_request"
    assert task["queue"] == "prompts.low"  # the free tier's priority
    assert task["created"] and task["started"] and task["finished"]


def test_provider_failing_twice_then_succeeding_completes_after_retries(worker, make_user, client_for, openai_server):
    client = client_for(make_user())
    text = unique("#fail=2 retry me")

    done = wait_final(client, submit(client, text)["id"])

    assert done["status"] == "COMPLETED", done
    assert done["response"]["text"] == f"echo: {text}"
    assert openai_server.calls_for(text) == 3


def test_provider_rate_limit_with_retry_after_is_waited_out(worker, make_user, client_for, openai_server):
    client = client_for(make_user())
    text = unique("#ratelimit=1 slow down")

    done = wait_final(client, submit(client, text)["id"])

    assert done["status"] == "COMPLETED", done
    assert openai_server.calls_for(text) == 2


@pytest.mark.parametrize(
    ("directive", "expected_error"),
    [
        ("#fail=always", "The provider answered HTTP 500"),
        ("#status=400", "The provider answered HTTP 400"),
        ("#malformed", "could not be read"),
        ("#empty", "could not be read"),
        ("#delay=4", "did not answer within 2 s (3 tries)"),  # the worker's timeout is 2 s
    ],
)
def test_provider_failing_for_good_ends_failed_with_the_reason_stored(
    worker, make_user, client_for, directive, expected_error
):
    client = client_for(make_user())
    accepted = submit(client, unique(f"{directive} doomed"))

    done = wait_final(client, accepted["id"], timeout=40)

    assert done["status"] == "FAILED"
    assert expected_error in done["error"]
    assert done["response"] is None
    task = wait_task_final(client, accepted["task_id"])
    assert task["state"] == "FAILURE"
    assert expected_error in task["error"]


def test_redelivered_task_produces_one_response(worker, make_user, client_for):
    client = client_for(make_user())
    accepted = submit(client, unique("#delay=0.5 deliver me twice"))
    # A second copy of the same message, as a broker redelivery would make, sent at once.
    celery_app.send_task(
        "prompts.process_prompt_request", args=[accepted["id"]], task_id=accepted["task_id"], queue="prompts.low"
    )

    done = wait_final(client, accepted["id"])
    wait_until(lambda: TaskRecord.objects.get(pk=accepted["task_id"]).state == "SUCCESS", what="task success")
    time.sleep(1.5)  # give the second copy time to finish too

    assert done["status"] == "COMPLETED"
    assert PromptResponse.objects.filter(request_id=accepted["id"]).count() == 1


def test_another_users_prompt_and_task_answer_404(db, make_user, client_for):
    owner, other = make_user(), make_user()
    request = PromptRequest.objects.create(owner=owner, model="gpt-4o-mini", prompt_text="mine")
    record = TaskRecord.objects.create(name="prompts.process_prompt_request", queue="prompts.low", owner=owner)

    other_client = client_for(other)

    assert other_client.get(f"/api/v1/prompts/{request.pk}/").status_code == 404
    assert other_client.get(f"/api/v1/tasks/{record.pk}/").status_code == 404
    assert other_client.get(f"/api/v1/tasks/{uuid.uuid4()}/").status_code == 404
    assert other_client.get("/api/v1/tasks/not-a-uuid/").status_code == 404
    assert other_client.get("/api/v1/prompts/").json()["count"] == 0
    assert client_for(owner).get(f"/api/v1/prompts/{request.pk}/").status_code == 200
    assert client_for(make_user(staff=True)).get(f"/api/v1/tasks/{record.pk}/").status_code == 200


def test_missing_or_wrong_key_answers_401(db, make_user):
    user = make_user()
    assert APIClient().get("/api/v1/prompts/").status_code == 401
    assert APIClient().get("/api/v1/prompts/", HTTP_AUTHORIZATION="Token wrong").status_code == 401
    assert APIClient().get("/api/v1/prompts/", HTTP_X_API_KEY="wrong").status_code == 401
    assert APIClient().get("/api/v1/prompts/", HTTP_X_API_KEY=user.api_key).status_code == 200
    assert APIClient().get("/api/v1/prompts/", HTTP_AUTHORIZATION=f"Token {user.api_key}").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt_text"),
        ({"prompt_text": ""}, "prompt_text"),
        ({"prompt_text": "   "}, "prompt_text"),
        ({"prompt_text": 42}, "prompt_text"),
        ({"prompt_text": ["a"]}, "prompt_text"),
        ({"prompt_text": None}, "prompt_text"),
        ({"prompt_text": "hi", "model": "no-such-model"}, "model"),
        ({"prompt_text": "hi", "model": 3}, "model"),
        ([{"prompt_text": "hi"}], "non_field_errors"),
    ],
)
def test_bad_input_answers_400_with_field_errors(db, make_user, client_for, body, field):
    client = client_for(make_user())

    response = client.post("/api/v1/prompts/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert PromptRequest.objects.count() == 0


@pytest.mark.parametrize("raw", ["{not json", "null", "", "[]", '"text"'])
def test_malformed_or_non_object_bodies_answer_400_json(db, make_user, client_for, raw):
    client = client_for(make_user())

    response = client.post("/api/v1/prompts/", raw, content_type="application/json")

    assert response.status_code == 400
    assert isinstance(response.json(), dict)
    assert PromptRequest.objects.count() == 0


def test_prompt_over_the_tiers_maximum_length_is_refused(db, make_user, client_for):
    user = make_user()  # free tier: at most 4,000 characters
    client = client_for(user)

    response = client.post("/api/v1/prompts/", {"prompt_text": "x" * 4001}, format="json")

    assert response.status_code == 400
    assert "at most 4000" in response.json()["prompt_text"][0]
    assert client.post("/api/v1/prompts/", {"prompt_text": "x" * 4000}, format="json").status_code == 202


def test_list_is_paginated_and_filters_by_status(db, make_user, client_for):
    user = make_user()
    for status in ["PENDING", "COMPLETED", "COMPLETED", "FAILED"]:
        PromptRequest.objects.create(owner=user, model="gpt-4o-mini", prompt_text="x", status=status)
    client = client_for(user)

    assert client.get("/api/v1/prompts/?status=COMPLETED").json()["count"] == 2
    page = client.get("/api/v1/prompts/?page_size=1000").json()
    assert page["count"] == 4 and len(page["results"]) == 4
    assert len(client.get("/api/v1/prompts/?page_size=2").json()["results"]) == 2


def test_the_accepted_body_is_what_the_documented_serializer_gives(db, make_user, client_for):
    """The 202 is built without a ModelSerializer (speed); its schema is PromptAcceptedSerializer's."""
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from prompts.api.prompts import PromptAcceptedSerializer

    response = client_for(make_user()).post("/api/v1/prompts/", {"prompt_text": "hi"}, format="json")

    assert response.status_code == 202
    prompt = PromptRequest.objects.get(pk=response.json()["id"])
    request = Request(APIRequestFactory().post("/api/v1/prompts/"))
    assert response.json() == PromptAcceptedSerializer(prompt, context={"request": request}).data
    assert response["Location"] == response.json()["status_url"]
    assert response.json()["task_url"].endswith(f"/api/v1/tasks/{prompt.task_id}/")
