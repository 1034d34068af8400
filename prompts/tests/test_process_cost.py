"""What running a prompt costs the worker in database statements, kept from growing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from prompts.models import PromptRequest, PromptResponse
from prompts.services import prompt_request_process

# Marking it started (one UPDATE ... RETURNING); then BEGIN, marking it completed (one UPDATE ...
# RETURNING), the response, the owner's usage counters (two), the owner and their webhooks for
# the notification, COMMIT. See docs/performance.md before raising it.
MOST_QUERIES_PER_PROCESSED_PROMPT = 9


@pytest.mark.django_db(transaction=True)  # real commits: BEGIN and COMMIT are counted
def test_processing_a_prompt_takes_one_transaction_and_no_savepoints(make_user, settings):
    settings.AI_PROVIDER = "offline"
    user = make_user()
    # Made directly, not dispatched: no worker of the session may run it meanwhile.
    request = PromptRequest.objects.create(owner=user, prompt_text="what does this cost?", model="gpt-4o-mini")

    with CaptureQueriesContext(connection) as queries:
        done = prompt_request_process(request_id=request.pk)

    statements = [query["sql"].strip().split()[0].upper() for query in queries.captured_queries]
    assert len(statements) <= MOST_QUERIES_PER_PROCESSED_PROMPT, "\n".join(statements)
    assert statements.count("BEGIN") == 1 and "SAVEPOINT" not in statements
    request.refresh_from_db()
    assert done.status == request.status == PromptRequest.Status.COMPLETED
    assert request.started_at is not None and request.started_at <= request.completed_at
    assert PromptResponse.objects.get(request=request).text


@pytest.mark.django_db(transaction=True)
def test_a_second_run_of_a_finished_prompt_changes_nothing_and_costs_two_statements(make_user, settings):
    settings.AI_PROVIDER = "offline"
    user = make_user()
    request = PromptRequest.objects.create(owner=user, prompt_text="twice?", model="gpt-4o-mini")
    prompt_request_process(request_id=request.pk)
    first = PromptRequest.objects.get(pk=request.pk)

    with CaptureQueriesContext(connection) as queries:
        again = prompt_request_process(request_id=request.pk)

    assert len(queries) <= 2  # the conditional UPDATE that matched nothing, then reading the row
    assert again.status == PromptRequest.Status.COMPLETED
    assert (again.started_at, again.completed_at) == (first.started_at, first.completed_at)
    assert PromptResponse.objects.filter(request=request).count() == 1
