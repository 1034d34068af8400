"""Questions answered from the user's own documents, cached for repeats, reported to webhooks."""

import json
import uuid

from django.utils import timezone

from conftest import wait_until
from notifications.models import Delivery, WebhookEndpoint
from prompts.models import PromptRequest
from sync.models import DocumentChunk
from sync.tests.helpers import wait_document


def upload(client, title: str, text: str) -> int:
    response = client.post("/api/v1/documents/", {"title": title, "text": text}, format="json")
    assert response.status_code == 202, response.content
    document_id = response.json()["id"]
    assert wait_document(client, document_id)["status"] == "EMBEDDED"
    return document_id


def ask(client, question: str, **extra) -> dict:
    response = client.post("/api/v1/query/", {"question": question, **extra}, format="json")
    assert response.status_code == 202, response.content

    def final():
        body = client.get(f"/api/v1/prompts/{response.json()['id']}/").json()
        return body if body["status"] in ("COMPLETED", "FAILED") else None

    return wait_until(final, timeout=30, what="the answer")


def chat_calls_with(openai_server, text: str) -> list[dict]:
    return [r["body"] for r in openai_server.requests if r["path"].endswith("/chat/completions")
            and text in json.dumps(r["body"] or {})]  # fmt: skip


def test_a_question_is_answered_from_the_askers_documents_only(worker, make_user, client_for, openai_server):
    owner, other = make_user(), make_user()
    mine, theirs = client_for(owner), client_for(other)
    tag = uuid.uuid4().hex[:8]
    lighthouse = upload(mine, "Lighthouse", f"The lighthouse keeper {tag} lights the lamp every evening at dusk.")
    upload(mine, "Bakery", f"The bakery {tag} sells sourdough bread and croissants every morning.")
    upload(theirs, "Secret", f"The lighthouse keeper {tag} secret code is swordfish.")
    question = f"When does the lighthouse keeper {tag} light the lamp?"

    answer = ask(mine, question, top_k=2)

    assert answer["status"] == "COMPLETED" and answer["kind"] == "query"
    chunks = answer["response"]["result"]["chunks"]
    assert chunks[0]["document_id"] == lighthouse
    owner_chunks = set(DocumentChunk.objects.filter(owner=owner).values_list("pk", flat=True))
    assert {c["chunk_id"] for c in chunks} <= owner_chunks
    (call,) = chat_calls_with(openai_server, question)
    context = call["messages"][0]["content"]
    assert "lights the lamp every evening" in context and "swordfish" not in context
    assert answer["response"]["result"]["cached"] is False


def test_a_repeated_question_comes_from_the_cache_until_the_documents_change(
    worker, make_user, client_for, openai_server
):
    client = client_for(make_user())
    tag = uuid.uuid4().hex[:8]
    upload(client, "Garden", f"The garden {tag} has tomatoes, basil and three apple trees.")
    question = f"What grows in the garden {tag}?"

    first, second = ask(client, question), ask(client, "  what grows in THE garden " + f"{tag}? ")

    assert first["response"]["result"]["cached"] is False
    assert second["response"]["result"]["cached"] is True
    assert second["response"]["text"] == first["response"]["text"]
    assert len(chat_calls_with(openai_server, question)) == 1
    upload(client, "Shed", f"The shed {tag} next to the garden holds the tools.")
    assert ask(client, question)["response"]["result"]["cached"] is False


def test_a_finished_query_reaches_the_users_webhooks_and_statistics(worker, make_user, client_for):
    user = make_user()
    client = client_for(user)
    WebhookEndpoint.objects.create(owner=user, url="https://hooks.example.com/in", events=["query.completed"],
                                   secret="s")  # fmt: skip
    upload(client, "Notes", f"Meeting notes {uuid.uuid4().hex}: the launch moves to Tuesday.")

    answer = ask(client, "When is the launch?")

    delivery = Delivery.objects.get(endpoint__owner=user, event="query.completed")
    assert delivery.payload["prompt_id"] == answer["id"]
    assert delivery.payload["text"] == answer["response"]["text"]
    usage = client.get("/api/v1/me/usage/?days=1").json()[0]
    assert usage["completed"] == PromptRequest.objects.filter(owner=user, status="COMPLETED").count() >= 1
    assert usage["date"] == timezone.localdate().isoformat()


def test_finished_prompts_reach_prompt_webhooks_once(worker, make_user, client_for):
    user = make_user()
    client = client_for(user)
    WebhookEndpoint.objects.create(owner=user, url="https://hooks.example.com/in",
                                   events=["prompt.completed", "prompt.failed"], secret="s")  # fmt: skip
    ok = client.post("/api/v1/prompts/", {"prompt_text": f"hello {uuid.uuid4().hex}"}, format="json").json()
    bad = client.post("/api/v1/prompts/", {"prompt_text": f"#status=400 {uuid.uuid4().hex}"}, format="json").json()

    wait_until(lambda: Delivery.objects.filter(endpoint__owner=user).count() == 2, what="two deliveries")

    events = dict(Delivery.objects.filter(endpoint__owner=user).values_list("event", "payload__prompt_id"))
    assert events == {"prompt.completed": ok["id"], "prompt.failed": bad["id"]}


def test_a_question_needs_text_and_a_sane_top_k(db, make_user, client_for):
    client = client_for(make_user())

    cases = [({}, "question"), ({"question": ""}, "question"), ({"question": 3}, "question"),
             ({"question": "x", "top_k": 0}, "top_k"), ({"question": "x", "top_k": 500}, "top_k")]  # fmt: skip
    for body, field in cases:
        response = client.post("/api/v1/query/", body, format="json")
        assert response.status_code == 400 and field in response.json(), body
