"""Operators can open every admin page of ours; others are sent to log in."""

import pytest
from django.contrib import admin

from jobs.models import TaskRecord
from prompts.models import PromptRequest, PromptResponse

OUR_APPS = {"users", "prompts", "jobs", "sync", "notifications"}


@pytest.fixture
def operator_client(client, make_user):
    operator = make_user(staff=True)
    client.force_login(operator)
    return client, operator


def test_every_admin_changelist_and_change_page_of_ours_renders(operator_client):
    client, operator = operator_client
    request = PromptRequest.objects.create(owner=operator, model="gpt-4o-mini", prompt_text="hi", status="COMPLETED")
    PromptResponse.objects.create(request=request, text="hello", provider="offline", model="offline-echo-1")
    TaskRecord.objects.create(name="prompts.process_prompt_request", queue="prompts.low", owner=operator)

    for model in admin.site._registry:
        if model._meta.app_label not in OUR_APPS:
            continue
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(base).status_code == 200, base
        assert client.get(base + "?q=x").status_code == 200, base
        instance = model.objects.first()
        if instance is not None:
            assert client.get(f"{base}{instance.pk}/change/").status_code == 200, base


def test_prompt_requests_filter_by_status_and_owner(operator_client):
    client, operator = operator_client
    PromptRequest.objects.create(owner=operator, model="gpt-4o-mini", prompt_text="done one", status="COMPLETED")
    PromptRequest.objects.create(owner=operator, model="gpt-4o-mini", prompt_text="failed one", status="FAILED")

    page = client.get(f"/admin/prompts/promptrequest/?status__exact=FAILED&owner__id__exact={operator.pk}")

    assert page.status_code == 200
    assert page.context["cl"].result_count == 1


def test_non_staff_user_is_sent_to_login(client, make_user):
    client.force_login(make_user())

    response = client.get("/admin/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
