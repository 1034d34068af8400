"""Translations, images with progress, conversations: the same request model, path and task API."""

import itertools
import json
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import wait_task_final, wait_until
from jobs.events import events_read
from prompts.models import Conversation, PromptRequest, PromptResponse
from prompts.services import conversations_archive


def wait_final(client, prompt_id: int, timeout: float = 30) -> dict:
    def final():
        body = client.get(f"/api/v1/prompts/{prompt_id}/").json()
        return body if body["status"] in ("COMPLETED", "FAILED", "CANCELLED") else None

    return wait_until(final, timeout=timeout, what=f"request {prompt_id} to finish")


def test_three_texts_into_two_languages_come_back_in_order(worker, make_user, client_for, openai_server):
    client = client_for(make_user())
    tag = uuid.uuid4().hex[:8]
    texts = [f"good morning {tag}", f"how are you {tag}", f"thank you {tag}"]

    response = client.post(
        "/api/v1/translations/", {"texts": texts, "source_lang": "en", "target_langs": ["de", "fr"]}, format="json"
    )

    assert response.status_code == 202
    done = wait_final(client, response.json()["id"])
    assert done["status"] == "COMPLETED", done
    assert done["kind"] == "translation"
    assert done["response"]["result"]["translations"] == {
        "de": [f"[de] {text}" for text in texts],
        "fr": [f"[fr] {text}" for text in texts],
    }
    translation_calls = [r for r in openai_server.requests if tag in json.dumps(r["body"] or {})]
    assert len(translation_calls) == 2  # one provider call per target language, all texts at once


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": ["hi"], "source_lang": "en", "target_langs": ["xx"]}, "target_langs"),
        ({"texts": ["hi"], "source_lang": "english", "target_langs": ["de"]}, "source_lang"),
        ({"texts": ["hi"], "source_lang": "en", "target_langs": ["en"]}, "target_langs"),
        ({"texts": ["hi"], "source_lang": "en", "target_langs": ["de", "de"]}, "target_langs"),
        ({"texts": [], "source_lang": "en", "target_langs": ["de"]}, "texts"),
        ({"texts": ["hi"] * 51, "source_lang": "en", "target_langs": ["de"]}, "texts"),
        ({"texts": [3], "source_lang": "en", "target_langs": ["de"]}, "texts"),
        ({"texts": ["x" * 5001], "source_lang": "en", "target_langs": ["de"]}, "texts"),
        ({"texts": "hi", "source_lang": "en", "target_langs": ["de"]}, "texts"),
        ({"source_lang": "en", "target_langs": ["de"]}, "texts"),
    ],
)
def test_bad_translation_input_answers_400_naming_what_is_wrong(db, make_user, client_for, body, field):
    response = client_for(make_user()).post("/api/v1/translations/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not PromptRequest.objects.exists()


def test_image_generation_reports_progress_and_only_its_owner_can_fetch_it(worker, make_user, client_for):
    owner, other = make_user(), make_user()
    client = client_for(owner)

    accepted = client.post("/api/v1/images/", {"prompt": f"#delay=0.5 a red fox {uuid.uuid4().hex}"}, format="json")

    assert accepted.status_code == 202
    body = accepted.json()
    done = wait_final(client, body["id"])
    assert done["status"] == "COMPLETED", done
    wait_task_final(client, body["task_id"])
    events = [event for _, event in events_read(body["task_id"])]
    percents = [e["progress_percent"] for e in events if e.get("state") == "PROGRESS"]
    assert len(set(percents)) >= 2, events
    assert events[-1]["state"] == "SUCCESS"
    assert percents.index(percents[-1]) < len(events) - 1
    image_url = done["response"]["image_url"]
    assert image_url.endswith(f"/api/v1/images/{body['id']}/file/")
    image = client.get(f"/api/v1/images/{body['id']}/file/")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content).startswith(b"\x89PNG\r\n\x1a\n")
    assert client_for(other).get(f"/api/v1/images/{body['id']}/file/").status_code == 404
    assert client_for(other).get(f"/api/v1/prompts/{body['id']}/").status_code == 404


def test_cancelling_an_image_midway_ends_cancelled_with_no_image(worker, make_user, client_for):
    client = client_for(make_user())
    accepted = client.post("/api/v1/images/", {"prompt": f"#delay=1.5 slow {uuid.uuid4().hex}"}, format="json").json()
    wait_until(lambda: PromptRequest.objects.get(pk=accepted["id"]).status == "IN_PROGRESS", what="it to start")

    assert client.post(f"/api/v1/prompts/{accepted['id']}/cancel/").status_code == 200

    time.sleep(2.5)  # the provider answers meanwhile; its image must be thrown away
    assert PromptRequest.objects.get(pk=accepted["id"]).status == "CANCELLED"
    assert not PromptResponse.objects.filter(request_id=accepted["id"]).exists()
    assert client.get(f"/api/v1/images/{accepted['id']}/file/").status_code == 404


def test_bad_image_input_answers_400(db, make_user, client_for):
    client = client_for(make_user())

    for body, field in [({"prompt": ""}, "prompt"), ({"prompt": "x", "size": "3x3"}, "size"),
                        ({"prompt": "x", "steps": 0}, "steps"), ({"prompt": 5}, "prompt")]:  # fmt: skip
        response = client.post("/api/v1/images/", body, format="json")
        assert response.status_code == 400 and field in response.json(), body


def test_a_three_turn_conversation_sends_the_first_two_turns_with_the_third(
    worker, make_user, client_for, openai_server
):
    client = client_for(make_user())
    conversation = client.post("/api/v1/conversations/", {"title": "trip"}, format="json").json()
    tag = uuid.uuid4().hex[:8]
    questions = [f"first {tag}", f"second {tag}", f"third {tag}"]

    for question in questions:
        accepted = client.post(
            "/api/v1/prompts/", {"prompt_text": question, "conversation": conversation["id"]}, format="json"
        ).json()
        assert wait_final(client, accepted["id"])["status"] == "COMPLETED"

    third_call = next(r for r in openai_server.requests if questions[2] in json.dumps(r["body"] or {}))
    assert third_call["body"]["messages"] == [
        {"role": "user", "content": questions[0]},
        {"role": "assistant", "content": f"echo: {questions[0]}"},
        {"role": "user", "content": questions[1]},
        {"role": "assistant", "content": f"echo: {questions[1]}"},
        {"role": "user", "content": questions[2]},
    ]
    detail = client.get(f"/api/v1/conversations/{conversation['id']}/").json()
    assert [turn["prompt_text"] for turn in detail["turns"]] == questions
    assert detail["turns"][2]["response_text"] == f"echo: {questions[2]}"
    assert client.get("/api/v1/conversations/").json()["count"] == 1


def test_someone_elses_or_an_archived_conversation_cannot_be_continued(db, make_user, client_for):
    owner, other = make_user(), make_user()
    mine = Conversation.objects.create(owner=owner)
    old = Conversation.objects.create(owner=owner)
    Conversation.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=200))

    assert conversations_archive(idle_days=90) == 1

    other_client = client_for(other)
    response = other_client.post("/api/v1/prompts/", {"prompt_text": "hi", "conversation": mine.pk}, format="json")
    assert response.status_code == 400 and "conversation" in response.json()
    assert other_client.get(f"/api/v1/conversations/{mine.pk}/").status_code == 404
    archived = client_for(owner).post("/api/v1/prompts/", {"prompt_text": "hi", "conversation": old.pk}, format="json")
    assert archived.status_code == 400
    assert Conversation.objects.get(pk=old.pk).archived_at is not None
    assert Conversation.objects.get(pk=mine.pk).archived_at is None


def test_a_streamed_chat_answer_arrives_in_growing_pieces_and_is_stored_once(worker, make_user, client_for):
    client = client_for(make_user())
    text = f"stream this answer please {uuid.uuid4().hex}"
    accepted = client.post("/api/v1/prompts/", {"prompt_text": text}, format="json").json()

    done = wait_final(client, accepted["id"])

    pieces = [event["partial_text"] for _, event in events_read(accepted["task_id"]) if "partial_text" in event]
    assert len(pieces) >= 3, pieces
    assert all(later.startswith(earlier) and len(later) > len(earlier) for earlier, later in itertools.pairwise(pieces))
    assert pieces[-1] == done["response"]["text"] == f"echo: {text}"
    assert PromptResponse.objects.filter(request_id=accepted["id"]).count() == 1


def test_revoking_a_running_image_task_ends_the_request_cancelled(worker, make_user, client_for):
    client = client_for(make_user())
    accepted = client.post("/api/v1/images/", {"prompt": f"#delay=1.5 revoke {uuid.uuid4().hex}"}, format="json").json()
    wait_until(lambda: PromptRequest.objects.get(pk=accepted["id"]).status == "IN_PROGRESS", what="it to start")

    revoked = client.post(f"/api/v1/tasks/{accepted['task_id']}/revoke/")

    assert revoked.status_code == 200 and revoked.json()["state"] == "REVOKED"
    assert client.get(f"/api/v1/prompts/{accepted['id']}/").json()["status"] == "CANCELLED"
    time.sleep(2.5)  # the provider answers meanwhile; nothing may be stored
    assert PromptRequest.objects.get(pk=accepted["id"]).status == "CANCELLED"
    assert not PromptResponse.objects.filter(request_id=accepted["id"]).exists()
