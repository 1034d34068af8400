"""The task event stream over real HTTP: uvicorn, a real worker, Redis streams, no polling."""

import http.client
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.utils import timezone

from jobs.events import events_redis, stream_key
from jobs.fanout import READ_CONNECTIONS
from jobs.models import TaskRecord
from jobs.services import task_progress_set, task_record_update
from tests.conftest import TEST_KEEPALIVE_SECONDS, TEST_STREAM_MAX_SECONDS


@dataclass
class Stream:
    status: int
    headers: dict[str, str]
    events: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)  # (id, data)
    comments: list[str] = field(default_factory=list)
    seconds: float = 0.0
    body: bytes = b""

    @property
    def data(self) -> list[dict[str, Any]]:
        return [event for _, event in self.events]


def read_stream(
    base_url: str, path: str, headers: dict[str, str], timeout: float = 20, opened: threading.Semaphore | None = None
) -> Stream:
    """GET an event stream and read it until the server closes it; `opened` is released at its first event."""
    url = urlsplit(base_url)
    started = time.monotonic()
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        stream = Stream(status=response.status, headers={k.lower(): v for k, v in response.getheaders()})
        if response.status != 200:
            stream.body = response.read()
            return stream
        event_id, data = None, []
        while line := response.readline():
            line = line.decode().rstrip("\n")
            if line.startswith(":"):
                stream.comments.append(line[1:].strip())
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif not line and data:
                stream.events.append((event_id, json.loads("\n".join(data))))
                if opened is not None and len(stream.events) == 1:
                    opened.release()
                event_id, data = None, []
        stream.seconds = time.monotonic() - started
        return stream
    finally:
        connection.close()


def api_key(user: Any) -> dict[str, str]:
    return {"X-API-Key": user.api_key}


def test_a_client_follows_an_image_task_to_its_final_state_and_a_reconnect_gets_it_at_once(
    worker, web_server, make_user, client_for
):
    user = make_user()
    accepted = client_for(user).post(
        "/api/v1/images/", {"prompt": f"#delay=1 a kite {uuid.uuid4().hex}"}, format="json"
    )
    task_id = accepted.json()["task_id"]

    stream = read_stream(web_server, f"/api/v1/tasks/{task_id}/events/", api_key(user))

    assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
    percents = [event["progress_percent"] for event in stream.data if event["state"] == "PROGRESS"]
    assert len(set(percents)) >= 2, stream.data
    assert stream.data[-1]["state"] == "SUCCESS" and stream.data[-1]["final"], stream.data
    assert [event["final"] for event in stream.data].count(True) == 1
    ids = [event_id for event_id, _ in stream.events if event_id]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(ids) >= 3

    # The task is over: a client reconnecting from an earlier event gets the rest, ending final.
    resumed = read_stream(web_server, f"/api/v1/tasks/{task_id}/events/", {**api_key(user), "Last-Event-ID": ids[0]})
    assert resumed.data[-1]["state"] == "SUCCESS" and resumed.seconds < 1.0
    assert [event_id for event_id, _ in resumed.events] == ids[1:]
    # ... and one that saw the final event (or reconnects after it) gets the final state at once.
    again = read_stream(web_server, f"/api/v1/tasks/{task_id}/events/", {**api_key(user), "Last-Event-ID": ids[-1]})
    assert [event["state"] for event in again.data] == ["SUCCESS"] and again.seconds < 1.0


def test_another_users_task_and_unknown_ids_answer_404_and_no_credentials_401(transactional_db, web_server, make_user):
    owner, other, staff = make_user(), make_user(), make_user(staff=True)
    record = TaskRecord.objects.create(
        name="jobs.sweep_task_records", queue="maintenance", owner=owner, state="SUCCESS", finished_at=timezone.now()
    )
    path = f"/api/v1/tasks/{record.id}/events/"

    assert read_stream(web_server, path, api_key(other)).status == 404
    assert read_stream(web_server, f"/api/v1/tasks/{uuid.uuid4()}/events/", api_key(owner)).status == 404
    assert read_stream(web_server, "/api/v1/tasks/not-a-uuid/events/", api_key(owner)).status == 404
    missing = read_stream(web_server, path, {})
    assert missing.status == 401 and json.loads(missing.body)["detail"]
    assert read_stream(web_server, path, {"X-API-Key": "wrong"}).status == 401
    # The owner and staff get the final state at once, even with nothing in the stream.
    for user in (owner, staff):
        stream = read_stream(web_server, path, api_key(user))
        assert stream.status == 200 and [event["state"] for event in stream.data] == ["SUCCESS"]


def test_an_idle_stream_gets_keep_alives_and_ends_after_the_maximum_duration(transactional_db, web_server, make_user):
    user = make_user()
    record = TaskRecord.objects.create(name="x.idle", queue="maintenance", owner=user, state="STARTED")

    stream = read_stream(web_server, f"/api/v1/tasks/{record.id}/events/", api_key(user))

    assert [event["state"] for event in stream.data] == ["STARTED"]
    assert stream.comments.count("keep-alive") >= TEST_STREAM_MAX_SECONDS // TEST_KEEPALIVE_SECONDS - 1
    assert TEST_STREAM_MAX_SECONDS - 0.5 < stream.seconds < TEST_STREAM_MAX_SECONDS + 3


def _redis_clients() -> int:
    return int(events_redis().info("clients")["connected_clients"])


def test_many_open_streams_share_a_few_redis_connections_and_each_gets_its_tasks_events(
    transactional_db, web_server, make_user
):
    user, count = make_user(), 60
    records = [
        TaskRecord.objects.create(name="x.many", queue="maintenance", owner=user, state="STARTED") for _ in range(count)
    ]
    before = _redis_clients()
    opened, streams = threading.Semaphore(0), {}

    def follow(record: TaskRecord) -> None:
        path = f"/api/v1/tasks/{record.id}/events/"
        streams[record.id] = read_stream(web_server, path, api_key(user), timeout=30, opened=opened)

    threads = [threading.Thread(target=follow, args=(record,)) for record in records]
    for thread in threads:
        thread.start()
    for _ in records:
        assert opened.acquire(timeout=60), "a stream did not open"
    # One stream used to hold one Redis connection; now the process shares a pool and one subscription.
    assert _redis_clients() - before <= READ_CONNECTIONS + 5
    for record in records:
        task_progress_set(task_id=record.id, percent=50, message="half way")
        task_record_update(task_id=record.id, state="SUCCESS", result={"ok": True}, finished_at=timezone.now())
    for thread in threads:
        thread.join(timeout=60)

    assert len(streams) == count
    for record in records:
        assert [event["state"] for event in streams[record.id].data] == ["STARTED", "PROGRESS", "SUCCESS"]
        assert streams[record.id].data[-1]["final"] and streams[record.id].seconds < TEST_STREAM_MAX_SECONDS


def test_an_event_whose_wake_up_notice_was_lost_still_arrives_by_the_next_keep_alive(
    transactional_db, web_server, make_user
):
    user = make_user()
    record = TaskRecord.objects.create(name="x.quiet", queue="maintenance", owner=user, state="STARTED")
    opened, outcome = threading.Semaphore(0), {}

    def follow() -> None:
        outcome["stream"] = read_stream(web_server, f"/api/v1/tasks/{record.id}/events/", api_key(user), opened=opened)

    thread = threading.Thread(target=follow)
    thread.start()
    assert opened.acquire(timeout=30)
    # Appended to the task's stream without the notice that wakes the web process (as a publisher
    # from before the notice existed would): the stream, not the notice, is the source of truth.
    events_redis().xadd(stream_key(record.id), {"data": json.dumps({"state": "SUCCESS", "result": None})})
    thread.join(timeout=30)

    stream = outcome["stream"]
    assert [event["state"] for event in stream.data] == ["STARTED", "SUCCESS"] and stream.data[-1]["final"]
    assert stream.seconds < TEST_KEEPALIVE_SECONDS + 2.5 < TEST_STREAM_MAX_SECONDS


def test_the_event_stream_is_described_in_the_api_schema(db, client):
    schema = client.get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/v1/tasks/{task_id}/events/"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} == {"task_id", "Last-Event-ID"}
