"""What accepting a prompt costs: database round trips and transactions per POST, kept from growing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import TaskRecord
from jobs.sending import sent_noted
from prompts.models import PromptRequest

# The API key look-up; BEGIN, the quota with today's usage, the request, the record with its lane,
# COMMIT. The send after the commit is noted in Redis. See docs/performance.md before raising it.
MOST_QUERIES_PER_ACCEPTED_POST = 6


def post(client, text):
    response = client.post("/api/v1/prompts/", {"prompt_text": text}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


@pytest.mark.django_db(transaction=True)  # real commits, so the send after commit happens too
def test_accepting_a_prompt_takes_one_transaction_and_a_handful_of_queries(make_user, client_for):
    client = client_for(make_user())
    post(client, "the first one also notes that the key was used")

    with CaptureQueriesContext(connection) as queries:
        accepted = post(client, "how much does this cost?")

    statements = [query["sql"].strip().split()[0].upper() for query in queries.captured_queries]
    assert len(statements) <= MOST_QUERIES_PER_ACCEPTED_POST, "\n".join(q["sql"] for q in queries.captured_queries)
    assert statements.count("BEGIN") == 1 and "SAVEPOINT" not in statements
    record = TaskRecord.objects.get(pk=accepted["task_id"])
    assert record.state == "QUEUED"  # released in the same transaction, then sent
    assert sent_noted([record.pk]) == {str(record.pk)}  # its send noted in Redis (on the record when it starts)
    assert PromptRequest.objects.get(pk=accepted["id"]).task_id == record.pk


@pytest.mark.django_db(transaction=True)
def test_an_accepted_posts_statements_are_prepared_once_they_repeat(make_user, client_for):
    client = client_for(make_user())
    for number in range(6):  # DB_PREPARE_THRESHOLD is 5: from the fifth run on, a statement is prepared
        post(client, f"prompt {number}")

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        prepared = [" ".join(row[0].split()) for row in cursor.fetchall()]
    for what in ("FROM users_apikey", "UPDATE users_user", 'INSERT INTO "prompts_promptrequest"', "jobs_fairlane"):
        assert any(what in statement for statement in prepared), f"{what!r} not prepared: {prepared}"
