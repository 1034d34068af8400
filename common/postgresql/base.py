"""Django's PostgreSQL backend, with a pool check that costs nothing while the server is fine.

Used (`ENGINE = "common.postgresql"`) when settings turn the connection pool on, as they do for
the web: under ASGI each request runs on a thread of its own and Django's connections are per
thread, so without a pool every request would open (and PostgreSQL fork) a connection.

psycopg_pool checks a connection before lending it when Django's CONN_HEALTH_CHECKS is on, with
an empty query: a round trip on every request. And after PostgreSQL restarts, every idle
connection in the pool is broken, but the pool finds that out one `getconn()` at a time, sleeping
1, 2, 4 ... seconds between failed checks: the first request after a restart waits seconds, or
times out. The check here asks the socket instead: a server that restarted, dropped or ended an
idle connection has written to it (an error, or the end of the stream), so an idle connection
with nothing to read is lent as it is. One with something to read is checked for real, and if it
fails, every idle connection is checked at once (`ConnectionPool.check()`, which replaces the
broken ones), so the request's next try gets a new connection without a backoff.
"""

import select
from functools import partial
from typing import Any

from django.db.backends.postgresql import base


def pooled_connection_check(pool: Any, connection: Any) -> None:
    """Raise if `connection` (idle, about to be lent by `pool`) is broken; cheap when it is not."""
    if connection.closed:
        raise ConnectionError("the connection is closed")
    try:
        poller = select.poll()  # not select(): it fails on descriptors above 1023 (many open streams)
        poller.register(connection.fileno(), select.POLLIN)
        if not poller.poll(0):  # the server has said nothing since the connection was last used
            return
    except (OSError, ValueError):
        pass  # could not ask the socket: check for real
    try:
        pool.check_connection(connection)
    except Exception:
        pool.check()  # the server went away for all of them: replace every broken idle connection now
        raise


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> Any:
        pool = super().pool
        # Django passes psycopg_pool its own check (or none); ConnectionPool keeps it in `_check`.
        if pool is not None and not isinstance(pool._check, partial):
            pool._check = partial(pooled_connection_check, pool)
        return pool
