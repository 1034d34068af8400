"""The broker transport keeps one Redis client per pool, and broker URLs keep their redis:// scheme."""

from urllib.parse import urlparse

import redis
from celery import current_app as app
from flower.utils.broker import Broker, Redis

from jobs import broker


def test_publishes_share_one_redis_client_and_the_messages_arrive() -> None:
    built: list[redis.Redis] = []
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, broker.Channel)
        original = channel._create_client

        def counting_create_client(*args, **kwargs):
            client = original(*args, **kwargs)
            built.append(client)
            return client

        channel._create_client = counting_create_client
        queue = "test-broker-kept-client"
        try:
            for n in range(5):
                channel._put(queue, {"body": n})
            assert channel._size(queue) == 5
            assert [channel._get(queue)["body"] for _ in range(5)] == [0, 1, 2, 3, 4]
        finally:
            channel._purge(queue)
    assert len(built) == 1  # kombu's own channel builds one per operation: 12 here


def test_a_channel_with_a_new_pool_gets_a_new_client() -> None:
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as again:
            assert first is again
        channel._pool = None  # what closing the channel does; the next use builds a new pool
        with channel.conn_or_acquire() as after:
            assert after is not first and after.connection_pool is channel.pool
            assert after.ping()


def test_broker_urls_keep_the_redis_scheme_that_flower_reads() -> None:
    with app.connection_for_write() as connection:
        uri = connection.as_uri(include_password=True)
        assert urlparse(uri).scheme == "redis"
        assert isinstance(connection.transport, broker.Transport)
    assert isinstance(Broker(uri), Redis)
