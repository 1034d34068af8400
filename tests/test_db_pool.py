"""The web's database connection pool: requests reuse connections, and a PostgreSQL restart costs
the next request one reconnect, not seconds of backoff (common/postgresql/base.py)."""

import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection

from config import embedded


def _get(base_url: str, user: Any, path: str = "/api/v1/prompts/") -> tuple[int, float]:
    """(status, seconds) of an authenticated GET that reads the database."""
    request = urllib.request.Request(base_url + path, headers={"X-API-Key": user.api_key})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.monotonic() - started


def _sessions_opened() -> int:
    """Connections ever opened to the test database (PostgreSQL counts them per database)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_web_requests_reuse_pooled_connections(transactional_db, web_server, make_user):
    """Under ASGI every request runs on a new thread; without the pool each one opened a connection."""
    user = make_user()
    assert _get(web_server, user)[0] == 200  # the pool is open
    before = _sessions_opened()
    statuses = [_get(web_server, user)[0] for _ in range(60)]
    opened = _sessions_opened() - before
    assert statuses == [200] * 60
    assert opened < 15, f"{opened} connections opened for 60 requests"  # the worker opens a few meanwhile


def test_the_web_answers_at_once_after_postgres_restarts(transactional_db, web_server, make_user, settings):
    """Every idle connection in the pool breaks with the restart; the first request after it still
    gets a working one without waiting (psycopg_pool alone retries them one by one, sleeping 1, 2,
    4 s between them), and no request fails."""
    if not settings.USES_EMBEDDED_SERVERS:
        pytest.skip("stops and starts the embedded PostgreSQL")
    user = make_user()
    with ThreadPoolExecutor(8) as pool:  # several requests at once: the pool grows past its minimum
        statuses = list(pool.map(lambda _: _get(web_server, user)[0], range(40)))
    assert statuses == [200] * 40

    connection.close()
    embedded.postgres_stop(settings.EMBEDDED_DIR)
    embedded.postgres_start(settings.EMBEDDED_DIR, durable=False)
    connection.close()

    after = [_get(web_server, user) for _ in range(10)]
    assert [status for status, _ in after] == [200] * 10
    assert after[0][1] < 1.0, f"the first request after the restart took {after[0][1]:.1f} s"
    assert sum(seconds for _, seconds in after) < 3.0


def test_a_request_that_waits_too_long_for_a_pooled_connection_gets_a_503(db):
    """DB_POOL_TIMEOUT passed with every connection taken: 503 with Retry-After, not a 500."""
    from django.db import OperationalError

    from common.api import exception_handler
    from common.postgresql.base import DatabaseWrapper

    options = {**connection.settings_dict["OPTIONS"], "pool": {"min_size": 1, "max_size": 1, "timeout": 0.2}}
    settings_dict = {**connection.settings_dict, "OPTIONS": options, "CONN_MAX_AGE": 0}
    holder, waiter = (DatabaseWrapper(settings_dict, alias="pool-test") for _ in range(2))
    try:
        holder.pool.open(wait=True, timeout=30)  # its one connection made, however slow the machine
        holder.ensure_connection()  # and taken
        with pytest.raises(OperationalError) as raised:
            waiter.ensure_connection()
        response = exception_handler(raised.value, {})
    finally:
        holder.close()
        holder.close_pool()
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.data["detail"] == "The service is busy; try again in a moment."


def test_a_view_outside_the_api_that_waits_too_long_for_a_connection_gets_a_503(rf):
    from django.db import OperationalError
    from psycopg_pool import PoolTimeout

    from common.middleware import DatabaseBusyMiddleware

    middleware = DatabaseBusyMiddleware(lambda request: None)
    try:
        raise OperationalError("couldn't get a connection after 10.00 sec") from PoolTimeout()
    except OperationalError as busy:
        response = middleware.process_exception(rf.get("/dashboard/"), busy)
    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert middleware.process_exception(rf.get("/dashboard/"), OperationalError("gone")) is None  # a 500 still


def test_the_health_check_tells_a_busy_pool_from_a_database_that_is_down(db):
    """Every pooled connection taken: the health check does not wait DB_POOL_TIMEOUT and report
    the database down; it asks the database on a connection of its own and says the pool is busy."""
    from common.postgresql.base import DatabaseWrapper
    from jobs.selectors import database_health

    options = {**connection.settings_dict["OPTIONS"], "pool": {"min_size": 1, "max_size": 1, "timeout": 10}}
    settings_dict = {**connection.settings_dict, "OPTIONS": options, "CONN_MAX_AGE": 0}
    holder, checker = (DatabaseWrapper(settings_dict, alias="pool-health-test") for _ in range(2))
    try:
        holder.pool.open(wait=True, timeout=30)
        assert database_health(db=checker, pool_wait=0.2) == {"ok": True}  # a free pooled connection
        holder.ensure_connection()  # the one connection taken
        started = time.monotonic()
        busy = database_health(db=checker, pool_wait=0.2)
        seconds = time.monotonic() - started
        unreachable = DatabaseWrapper({**settings_dict, "PORT": str(_closed_port())}, alias="pool-health-down")
        try:
            down = database_health(db=unreachable, pool_wait=0.2)
        finally:
            unreachable.close_pool()  # its pool would go on trying to connect
    finally:
        holder.close()
        holder.close_pool()
    assert busy == {"ok": True, "busy": "1 pooled connections, none free for 0.2 s"}
    assert seconds < 5  # not DB_POOL_TIMEOUT (10 s here)
    assert down["ok"] is False and "connect" in down["error"].lower()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed
