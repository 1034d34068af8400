"""Test fixtures: the real embedded servers, a real Celery worker process, a fake provider.

The worker is a separate `celery worker` process on the test database and the test Redis,
consuming every queue, so tests exercise real delivery. Only the paid provider is replaced:
by a local HTTP server speaking the OpenAI protocol, which the real `openai` client calls.
Tests that need the worker use the `worker` fixture (it implies a transactional database,
because the worker must see committed rows).
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from config.celery import app as celery_app
from jobs import queues
from tests.openai_server import OpenAIServer
from users.services import api_key_create, tiers_default_ensure, user_create

BASE_DIR = Path(__file__).resolve().parent
# What the worker under test is configured with (the fake provider is fast; keep retries quick).
WORKER_AI_TIMEOUT_SECONDS = 2
WORKER_AI_MAX_RETRIES = 2
# Notifications in the worker under test: local receivers allowed, quick retries, small batches.
WORKER_NOTIFICATION_SETTINGS = {
    "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "1",
    "WEBHOOKS_TIMEOUT_SECONDS": "2",
    "WEBHOOKS_MAX_ATTEMPTS": "3",
    "WEBHOOKS_RETRY_BASE_DELAY_SECONDS": "0.2",
    "WEBHOOKS_RETRY_MAX_DELAY_SECONDS": "1.5",
    "WEBHOOKS_DISABLE_AFTER_FAILURES": "3",
    "NOTIFICATIONS_BATCH_SIZE": "2",
}


def wait_until(predicate: Callable[[], Any], *, timeout: float = 20, interval: float = 0.1, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")


def wait_task_final(client: APIClient, task_id: str) -> dict:
    """A task's API body once its state is final (written by the worker just after the work's own)."""

    def final() -> dict | None:
        body = client.get(f"/api/v1/tasks/{task_id}/").json()
        return body if body["state"] in ("SUCCESS", "FAILURE", "REVOKED") else None

    return wait_until(final, what=f"task {task_id} to finish")


@pytest.fixture(scope="session", autouse=True)
def _empty_cache() -> None:
    """Start from an empty cache: user ids restart with each test database, rate counters must too."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def _key_cache_stopped_before_the_database_goes(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """The API key cache's listening connection must be gone before the test database is dropped."""
    yield
    from users.key_cache import key_cache_stop

    with django_db_blocker.unblock():
        key_cache_stop()


@pytest.fixture(scope="session")
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    yield server
    server.stop()


def child_env(django_db_blocker: Any) -> dict[str, str]:
    """The environment of a process of ours (worker, web server) on the test database and Redis."""
    with django_db_blocker.unblock():
        db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "CONN_MAX_AGE": "0",
    }


class WorkerProcess:
    """A `celery worker` subprocess; can be killed and started again by fault tests."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.node_name = ""

    def start(
        self,
        *,
        name: str = "test",
        concurrency: int = 16,
        consume: tuple[str, ...] = queues.ALL_QUEUES,
        pool: str = "threads",
    ) -> None:
        self.node_name = f"{name}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        command = [
            *(sys.executable, "-m", "celery", "-A", "config", "worker", "-P", pool, "-c", str(concurrency)),
            *("-Q", ",".join(consume), "-n", self.node_name),
            *("--without-gossip", "--without-mingle", "--loglevel=INFO"),
        ]
        with open(self.log_path, "a") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(command, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers_ping, timeout=60, interval=0.3, what=f"worker {self.node_name} to answer ping")

    def _answers_ping(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"worker exited with {self.process.returncode}; see {self.log_path}")
        return bool(celery_app.control.ping(destination=[self.node_name], timeout=0.5))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def worker_process(
    django_db_setup: None, django_db_blocker: Any, openai_server: OpenAIServer
) -> Iterator[WorkerProcess]:
    env = {
        **child_env(django_db_blocker),
        "AI_PROVIDER": "openai",
        "OPENAI_BASE_URL": openai_server.base_url,
        "OPENAI_API_KEY": "test-key",
        "AI_TIMEOUT_SECONDS": str(WORKER_AI_TIMEOUT_SECONDS),
        "AI_MAX_RETRIES": str(WORKER_AI_MAX_RETRIES),
        "CONN_MAX_AGE": "60",  # as deployed: connections kept between tasks (a PostgreSQL restart is tested)
        "JOBS_WORKER_HEARTBEAT_SECONDS": "1",  # a killed worker is noticed within seconds
        "AI_STREAM_PUBLISH_SECONDS": "0",  # every streamed piece reaches the events
        "AI_BUDGET_REFRESH_SECONDS": "0.2",  # a budget a test writes applies at once
        "AI_BUDGET_MAX_WAIT_SECONDS": "1",  # longer waits re-schedule the task (that path is tested)
        "CACHE_MAX_IDLE_DAYS": "0",  # lets the cache cleanup test see a 1-second-old key as stale
        "LOG_FORMAT": "json",  # as in production; tests/test_logs.py reads the lines
        **WORKER_NOTIFICATION_SETTINGS,
    }
    celery_app.control.purge()  # nothing left over from an earlier run
    log_dir = Path(settings.EMBEDDED_DIR) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(env, log_dir / "worker.log")
    worker.log_path.write_text("")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(transactional_db: None, worker_process: WorkerProcess) -> WorkerProcess:
    """A live worker; the test's rows are committed so the worker sees them."""
    return worker_process


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    """Create a user (default tier unless named) with an API key on `user.api_key`."""

    def make(*, tier: str | None = None, staff: bool = False) -> Any:
        tiers_default_ensure()  # a transactional test before this one flushed the migrated rows
        user = user_create(username=f"user-{uuid.uuid4().hex[:8]}", tier_slug=tier, is_staff=staff)
        _, user.api_key = api_key_create(user=user)
        return user

    return make


@pytest.fixture
def client_for() -> Callable[[Any], APIClient]:
    """An API client that authenticates as `user` with their API key."""

    def make(user: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {user.api_key}")
        return client

    return make
