"""A real ASGI web server (uvicorn) on the test database, and a real headless Chromium.

pytest-django's `live_server` is a WSGI thread, which cannot serve async streaming; this starts
the same command as `make run`'s `web:` line, on a free port, with the worker's environment (the
test database and Redis), so event streams and pages are served as in production.
"""

import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from conftest import BASE_DIR, WorkerProcess, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
BROWSER_MISSING = "chromium not installed: apt-get install chromium chromium-driver"
# Short on purpose, so tests see a keep-alive and a stream reaching its end.
TEST_KEEPALIVE_SECONDS = 1
TEST_STREAM_MAX_SECONDS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def uvicorn_server(env: dict[str, str], log_name: str) -> Iterator[str]:
    """Run `make run`'s web command on a free port with `env`; yield its base URL, then stop it."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--lifespan", "off", "--log-level", "warning"]
    log_path = Path(settings.EMBEDDED_DIR) / "logs" / log_name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}; see {log_path}")
        return _answers(f"{base_url}/admin/login/")

    try:
        wait_until(ready, timeout=60, interval=0.2, what="uvicorn to answer")
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def web_server(worker_process: WorkerProcess) -> Iterator[str]:
    """The base URL of a uvicorn process serving config.asgi on the test database."""
    env = {
        **worker_process.env,
        "DEBUG": "1",  # static files from the apps (WhiteNoise finders), plain http
        "TASK_EVENTS_KEEPALIVE_SECONDS": str(TEST_KEEPALIVE_SECONDS),
        "TASK_EVENTS_MAX_SECONDS": str(TEST_STREAM_MAX_SECONDS),
    }
    with uvicorn_server(env, "web.log") as base_url:
        yield base_url


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the session (Debian's package, driven by Selenium)."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(BROWSER_MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium: Any, web_server: str) -> Iterator[Any]:
    """The session's browser with no cookies left from an earlier test."""
    chromium.get(f"{web_server}/admin/login/")
    chromium.delete_all_cookies()
    yield chromium
    chromium.delete_all_cookies()
