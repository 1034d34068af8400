"""A real local webhook receiver (stdlib ThreadingHTTPServer on 127.0.0.1) that records requests.

How it answers depends on the path:
    /ok                 200
    /fail-once          500 to the first request of each X-Webhook-Id, then 200
    /ratelimit-once     429 with Retry-After: 1 to the first request of each X-Webhook-Id, then 200
    /status/CODE        always CODE
    /redirect?to=URL    302 to URL
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """The receiver-side check documented in docs/notifications.md, line for line."""
    timestamp = headers["X-Webhook-Timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False  # too old: a replay
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", headers["X-Signature"])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class WebhookReceiver:
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                status, extra = receiver._answer(urlsplit(self.path), headers)
                with receiver.lock:
                    receiver.requests.append(Received(self.path, headers, body, status))
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    def url(self, path: str = "/ok") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _seen_before(self, webhook_id: str) -> bool:
        with self.lock:
            return any(r.headers.get("X-Webhook-Id") == webhook_id for r in self.requests)

    def _answer(self, url: Any, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        first = not self._seen_before(headers.get("X-Webhook-Id", ""))
        if url.path == "/fail-once":
            return (500, {}) if first else (200, {})
        if url.path == "/ratelimit-once":
            return (429, {"Retry-After": "1"}) if first else (200, {})
        if url.path.startswith("/status/"):
            return int(url.path.rsplit("/", 1)[1]), {}
        if url.path == "/redirect":
            return 302, {"Location": parse_qs(url.query)["to"][0]}
        return 200, {}

    def received(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if path is None or urlsplit(r.path).path == path]
