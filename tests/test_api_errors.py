"""Regressions found by the schema fuzzer (tests/test_schema_fuzz.py), one test each."""

import pytest
from rest_framework.test import APIClient


@pytest.mark.parametrize(
    "path",
    ["/api/v1/prompts/abc/", "/api/v1/images/-1/file/", "/api/v1/webhooks/1.5/", "/api/v1/no-such-thing/"],
)
def test_an_api_url_that_matches_no_route_answers_json_404(db, make_user, client_for, path):
    response = client_for(make_user()).get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_pages_outside_the_api_keep_their_html_404(db):
    response = APIClient().get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def _schema(client: APIClient) -> dict:
    return client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def test_the_schema_says_a_task_not_started_or_finished_has_null_times(db, make_user, client_for):
    task = _schema(client_for(make_user()))["components"]["schemas"]["TaskRecord"]["properties"]

    assert task["started"]["nullable"] is True
    assert task["finished"]["nullable"] is True


def test_the_schema_describes_each_task_event_as_an_object_whose_data_is_json(db, make_user, client_for):
    paths = _schema(client_for(make_user()))["paths"]
    event = paths["/api/v1/tasks/{task_id}/events/"]["get"]["responses"]["200"]["content"]["text/event-stream"]

    assert event["schema"]["type"] == "object"
    assert event["schema"]["properties"]["data"]["contentMediaType"] == "application/json"
    assert "state" in event["schema"]["properties"]["data"]["contentSchema"]["properties"]


def test_a_task_time_filter_with_an_offset_postgresql_refuses_is_compared_in_utc(db, make_user, client_for):
    client = client_for(make_user())

    far_offset = client.get("/api/v1/tasks/", {"created_after": "0894-06-18T06:33:42.867284+17:32"})
    before_year_one = client.get("/api/v1/tasks/", {"created_before": "0001-01-01T00:00:00+17:00"})

    assert far_offset.status_code == 200 and far_offset.json()["count"] == 0
    assert before_year_one.status_code == 400 and "created_at" in before_year_one.json()
