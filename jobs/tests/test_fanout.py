"""Following task events in a web process (jobs/fanout.py) against the real Redis, no web server."""

import asyncio
import json
import uuid

from django.conf import settings

from jobs.events import event_publish, events_redis, stream_key
from jobs.fanout import READ_COUNT, StreamWaker


async def _follow_until(waker: StreamWaker, key: str, *, count: int, publish_while_following: int) -> list[str]:
    """Follow `key` from its start, publishing more events meanwhile; the progress messages seen, in order."""
    seen: list[str] = []
    cursor = "0-0"
    async with waker.follow(key) as follower:
        for number in range(publish_while_following):
            event_publish(key.rsplit(":", 1)[1], {"progress_message": f"live {number}"})
        while len(seen) < count:
            entries = await follower.entries_after(cursor, timeout=5)
            assert entries, f"nothing more after {len(seen)} events"
            seen += [json.loads(data)["progress_message"] for _, data in entries]
            cursor = entries[-1][0]
    return seen


def test_a_follower_gets_a_backlog_larger_than_one_read_and_live_events_in_order_once():
    task_id = uuid.uuid4()
    key = stream_key(task_id)
    backlog = READ_COUNT + 50
    for number in range(backlog):  # published before anyone follows: only the stream has them
        event_publish(task_id, {"progress_message": f"old {number}"})

    async def scenario() -> list[str]:
        waker = StreamWaker(settings.CELERY_BROKER_URL)
        return await _follow_until(waker, key, count=backlog + 20, publish_while_following=20)

    try:
        seen = asyncio.run(scenario())
    finally:
        events_redis().delete(key)

    assert seen == [f"old {n}" for n in range(backlog)] + [f"live {n}" for n in range(20)]


def test_a_follower_that_hears_nothing_still_reads_what_the_stream_got_when_its_wait_ends():
    task_id = uuid.uuid4()
    key = stream_key(task_id)

    async def scenario() -> list[bytes]:
        waker = StreamWaker(settings.CELERY_BROKER_URL)
        async with waker.follow(key) as follower:
            assert await follower.entries_after("0-0", timeout=0.2) == []
            # Appended without the notice (a publisher of an older release, a notice lost in a reconnect).
            events_redis().xadd(key, {"data": json.dumps({"state": "SUCCESS"})})
            entries = await follower.entries_after("0-0", timeout=1)
        return [data for _, data in entries]

    try:
        assert [json.loads(data) for data in asyncio.run(scenario())] == [{"state": "SUCCESS"}]
    finally:
        events_redis().delete(key)


def test_reads_survive_their_pooled_connection_being_dropped():
    task_id = uuid.uuid4()
    event_publish(task_id, {"state": "STARTED"})

    async def scenario() -> tuple[int, int]:
        waker = StreamWaker(settings.CELERY_BROKER_URL)
        client_id = await waker.redis.client_id()
        events_redis().client_kill_filter(_id=client_id)  # as a Redis restart does to every connection
        read = await waker.redis.xrange(stream_key(task_id))
        return len(read), await waker.redis.client_id()

    try:
        entries, new_client_id = asyncio.run(scenario())
    finally:
        events_redis().delete(stream_key(task_id))
    assert entries == 1 and new_client_id
