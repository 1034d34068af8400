"""Processes a benchmark starts and stops itself: Celery workers, the web server, the fake provider.

Every child gets the benchmark's own servers (DATABASE_URL, REDIS_URL) explicitly, listens on
127.0.0.1 only, logs to var/bench/logs/, and is stopped by the benchmark that started it.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what or predicate}")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this run's servers, production-like settings."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        # With DATABASE_URL set, settings take this for a deployment; the bench speaks plain http.
        "SECURE_SSL_REDIRECT": "0",
        "AI_PROVIDER": "offline",
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def log_dir() -> Path:
    path = Path(settings.EMBEDDED_DIR) / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Child:
    """A child process with its log file; `stop()` ends it (and only it)."""

    def __init__(self, command: list[str], *, env: dict[str, str], log_name: str) -> None:
        self.log_path = log_dir() / log_name
        with open(self.log_path, "w") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.log_path.name}: exited with {self.process.returncode}:\n{tail}")

    def rss_kib(self) -> int:
        """Resident memory now (VmRSS in /proc/<pid>/status), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Worker(Child):
    """A `celery worker` with the threads pool, as in the Procfile, answering ping before use."""

    def __init__(
        self,
        *,
        app: Any,
        app_module: str = "config",
        queues: tuple[str, ...],
        concurrency: int,
        env: dict[str, str],
        name: str,
    ) -> None:
        self.app = app
        self.node_name = f"{name}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        command = [
            *(PYTHON, "-m", "celery", "-A", app_module, "worker", "-P", "threads", "-c", str(concurrency)),
            *("-Q", ",".join(queues), "-n", self.node_name, "--without-gossip", "--without-mingle"),
            "--loglevel=WARNING",
        ]
        super().__init__(command, env=env, log_name=f"{name}.log")
        wait_until(self._answers_ping, timeout=90, interval=0.3, what=f"worker {self.node_name}")

    def _answers_ping(self) -> bool:
        self.check_alive()
        return bool(self.app.control.ping(destination=[self.node_name], timeout=0.5))

    def pause(self, queue: str) -> None:
        """Stop taking messages from `queue` (they pile up in the broker)."""
        self.app.control.cancel_consumer(queue, destination=[self.node_name], reply=True, timeout=5)

    def resume(self, queue: str) -> None:
        """Take messages from `queue` again; returns once the worker confirmed."""
        replies = self.app.control.add_consumer(queue, destination=[self.node_name], reply=True, timeout=5)
        if not replies:
            raise RuntimeError(f"worker {self.node_name} did not confirm consuming {queue}")


class WebServer(Child):
    """uvicorn serving config.asgi as in the Procfile (one process), on a free port."""

    def __init__(self, *, env: dict[str, str]) -> None:
        self.port = free_port()
        command = [
            *(PYTHON, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"),
            *("--port", str(self.port), "--lifespan", "off", "--no-access-log"),  # the app logs each request
        ]
        super().__init__(command, env=env, log_name="web.log")
        wait_until(self._listening, timeout=60, interval=0.2, what="the web server")

    def _listening(self) -> bool:
        self.check_alive()
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0


class OpenAIServer(Child):
    """The local OpenAI-protocol server of the tests (tests/openai_server.py), on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        # No pause between streamed pieces: a call takes what its #delay says, streamed or not.
        command = [PYTHON, str(BASE_DIR / "tests" / "openai_server.py"), "--port", str(self.port)]
        command += ["--stream-chunk-delay", "0"]
        super().__init__(command, env=dict(os.environ), log_name="openai-server.log")
        wait_until(self._listening, timeout=30, interval=0.1, what="the OpenAI-protocol server")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _listening(self) -> bool:
        self.check_alive()
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0
