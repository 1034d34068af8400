"""Structured logs: one request followed by its id from the API to the worker to the webhook."""

import json
import logging
import uuid

from django.db import transaction
from pythonjsonlogger.json import JsonFormatter

from common.logs import ContextFilter, log_context_bind, logging_config
from conftest import wait_task_final, wait_until
from jobs.models import TaskRecord
from notifications.models import Delivery
from notifications.services import webhook_endpoint_create
from notifications.tests.receiver import WebhookReceiver


def _json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def test_a_sane_x_request_id_is_kept_and_echoed_and_anything_else_replaced(db, make_user, client_for):
    client = client_for(make_user())

    kept = client.get("/api/v1/me/", HTTP_X_REQUEST_ID="edge-1234.abc:5")
    made = client.get("/api/v1/me/")
    replaced = client.get("/api/v1/me/", HTTP_X_REQUEST_ID="two words\x07" + "x" * 300)
    on_an_error = client.get("/api/v1/prompts/abc/", HTTP_X_REQUEST_ID="trace-404")

    assert kept["X-Request-ID"] == "edge-1234.abc:5"
    assert len(made["X-Request-ID"]) == 32 and made["X-Request-ID"] != replaced["X-Request-ID"]
    assert len(replaced["X-Request-ID"]) == 32
    assert on_an_error.status_code == 404 and on_an_error["X-Request-ID"] == "trace-404"


def test_json_lines_carry_the_request_and_task_ids_of_their_context(capsys):
    spec = logging_config(log_format="json", level="INFO")["formatters"]["json"]
    handler = logging.StreamHandler()  # the LOGGING handler's parts, on one logger only
    handler.setFormatter(JsonFormatter(**{key: value for key, value in spec.items() if key != "()"}))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    try:
        log_context_bind(request_id="r-1", task_id="t-1", task_name="some.task")
        logger.warning("inside %s", "a task")
        log_context_bind()
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = _json_lines(capsys.readouterr().err)[-2:]

    assert inside["message"] == "inside a task" and inside["level"] == "WARNING" and inside["logger"] == "tests.logs"
    assert (inside["request_id"], inside["task_id"], inside["task_name"]) == ("r-1", "t-1", "some.task")
    assert "time" in inside and "context" not in inside
    assert (outside["request_id"], outside["task_id"], outside["task_name"]) == (None, None, None)


def test_a_request_is_followed_by_its_id_from_the_api_to_the_worker_and_its_webhook(
    worker, make_user, client_for, settings
):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    receiver = WebhookReceiver().start()
    try:
        user = make_user()
        with transaction.atomic():
            webhook_endpoint_create(user=user, url=receiver.url("/ok"), events=["prompt.completed"])
        request_id = f"follow-{uuid.uuid4().hex[:12]}"
        log_start = len(worker.log())

        answer = client_for(user).post(
            "/api/v1/prompts/", {"prompt_text": "Hello"}, format="json", HTTP_X_REQUEST_ID=request_id
        )

        assert answer.status_code == 202 and answer["X-Request-ID"] == request_id
        task_id = answer.json()["task_id"]
        assert wait_task_final(client_for(user), task_id)["state"] == "SUCCESS"
        delivery = wait_until(
            lambda: Delivery.objects.filter(endpoint__owner=user, state="DELIVERED").first(), what="the webhook"
        )
        delivery_task = TaskRecord.objects.get(target_type="notifications.delivery", target_id=str(delivery.pk))

        def lines_of(task: str) -> list[dict]:
            return [line for line in _json_lines(worker.log()[log_start:]) if line.get("task_id") == task]

        prompt_lines = wait_until(lambda: lines_of(task_id), what="the prompt task's log lines")
        delivery_lines = wait_until(lambda: lines_of(str(delivery_task.pk)), what="the delivery task's log lines")
    finally:
        receiver.stop()

    assert {line["request_id"] for line in prompt_lines} == {request_id}
    assert {line["task_name"] for line in prompt_lines} == {"prompts.process_prompt_request"}
    assert any("succeeded" in line["message"] for line in prompt_lines)
    assert {line["request_id"] for line in delivery_lines} == {request_id}
    assert any(line["message"].startswith(f"webhook delivery {delivery.pk} ") for line in delivery_lines)
    [posted] = receiver.received("/ok")
    assert posted.headers["X-Request-ID"] == request_id
    assert TaskRecord.objects.get(pk=task_id).request_id == request_id


def test_a_request_held_back_by_its_users_cap_keeps_its_id_when_released(worker, make_user, client_for):
    from users.models import Tier

    user = make_user()
    user.tier = Tier.objects.create(slug=f"one-{uuid.uuid4().hex[:6]}", name="One", max_in_flight=1)
    user.save(update_fields=["tier"])
    client = client_for(user)
    log_start = len(worker.log())
    ids = [f"held-{n}-{uuid.uuid4().hex[:8]}" for n in range(2)]

    first, second = (
        client.post("/api/v1/prompts/", {"prompt_text": f"#delay=0.5 {n}"}, format="json", HTTP_X_REQUEST_ID=rid)
        for n, rid in enumerate(ids)
    )
    second_task = second.json()["task_id"]
    assert TaskRecord.objects.get(pk=second_task).state == "WAITING"  # released when the first ends
    assert wait_task_final(client, second_task)["state"] == "SUCCESS"

    lines = wait_until(
        lambda: [line for line in _json_lines(worker.log()[log_start:]) if line.get("task_id") == second_task],
        what="the released task's log lines",
    )
    assert {line["request_id"] for line in lines} == {ids[1]} and first.status_code == 202
