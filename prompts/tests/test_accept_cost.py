"""What accepting a prompt costs: database round trips and transactions per POST, kept from growing."""

import uuid
from types import SimpleNamespace

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

import jobs.services
from jobs.models import FairLane, TaskRecord
from jobs.sending import sent_noted
from prompts.models import PromptRequest
from prompts.services import prompt_request_create, requests
from users.models import UsageDaily

# The API key look-up, then one statement: the quota with today's usage, the request, the record
# with its lane (no BEGIN, no COMMIT). The send after it is noted in Redis. See
# docs/performance.md before raising it.
MOST_QUERIES_PER_ACCEPTED_POST = 2


def post(client, text):
    response = client.post("/api/v1/prompts/", {"prompt_text": text}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


@pytest.mark.django_db(transaction=True)  # real commits, so the send after commit happens too
def test_accepting_a_prompt_takes_one_statement_after_the_key_look_up(make_user, client_for):
    client = client_for(make_user())
    post(client, "the first one also notes that the key was used")

    with CaptureQueriesContext(connection) as queries:
        accepted = post(client, "how much does this cost?")

    statements = [query["sql"].strip().split()[0].upper() for query in queries.captured_queries]
    assert len(statements) <= MOST_QUERIES_PER_ACCEPTED_POST, "\n".join(q["sql"] for q in queries.captured_queries)
    assert "BEGIN" not in statements and "SAVEPOINT" not in statements
    record = TaskRecord.objects.get(pk=accepted["task_id"])
    assert record.state == "QUEUED"  # released in the same statement, then sent
    assert sent_noted([record.pk]) == {str(record.pk)}  # its send noted in Redis (on the record when it starts)
    request = PromptRequest.objects.get(pk=accepted["id"])
    assert request.task_id == record.pk and request.prompt_text == "how much does this cost?"
    assert record.args == [request.pk]
    assert (record.target_type, record.target_id) == ("prompts.promptrequest", str(request.pk))
    assert record.owner_id == request.owner_id and record.fair_share
    assert UsageDaily.objects.get(user=request.owner).requests == 2


@pytest.mark.django_db(transaction=True)
def test_a_request_whose_record_cannot_be_written_is_neither_recorded_nor_counted(make_user, monkeypatch):
    """The quota, the request, the record and its lane are one statement: all of them or none."""
    user = make_user()
    monkeypatch.setattr(jobs.services, "fair_send", lambda record, **kwargs: True)  # no worker finishes it
    first = prompt_request_create(user=user, prompt_text="the first")
    # The second record's id is taken.
    monkeypatch.setattr(requests, "uuid", SimpleNamespace(uuid4=lambda: first.task_id, UUID=uuid.UUID))

    with pytest.raises(IntegrityError):
        prompt_request_create(user=user, prompt_text="the second")

    assert list(PromptRequest.objects.filter(owner=user).values_list("prompt_text", flat=True)) == ["the first"]
    user.refresh_from_db()
    assert user.requests_today == 1
    assert UsageDaily.objects.get(user=user).requests == 1
    lane = FairLane.objects.get(owner=user)
    assert (lane.waiting, lane.in_flight) == (0, 1)


@pytest.mark.django_db(transaction=True)
def test_an_accepted_posts_statements_are_prepared_once_they_repeat(make_user, client_for, settings):
    settings.API_KEY_CACHE = False  # a kept key is looked up once (users/key_cache.py): look it up each time
    client = client_for(make_user())
    for number in range(6):  # DB_PREPARE_THRESHOLD is 5: from the fifth run on, a statement is prepared
        post(client, f"prompt {number}")

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        prepared = [" ".join(row[0].split()) for row in cursor.fetchall()]
    for what in ("FROM users_apikey", "UPDATE users_user", 'INSERT INTO "prompts_promptrequest"', "jobs_fairlane"):
        assert any(what in statement for statement in prepared), f"{what!r} not prepared: {prepared}"
