"""Local stand-in for the OpenAI REST API, driven by directives embedded in prompts.

Directives found anywhere in a request's JSON body (combinable):
    #fail=N / #fail=always   HTTP 500 for the first N requests with the same key / always
    #status=CODE             always answer CODE with an OpenAI-style error
    #ratelimit=N             HTTP 429 (Retry-After: 1) for the first N requests with the same key
    #delay=SECONDS           sleep before answering
    #malformed               HTTP 200 with a body that is not valid JSON
    #empty                   HTTP 200 with valid JSON that has no ``choices``

The key is the last user message (chat), the whole input (embeddings) or the prompt (images).
When both #ratelimit and #fail are present, the 429s come first, then the 500s.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import math
import re
import socket
import struct
import sys
import threading
import time
import traceback
import zlib
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "gpt-image-1")
DEFAULT_EMBEDDING_DIMENSIONS = 1536
STREAM_CHUNK_DELAY = 0.05
COUNTED_PATHS = ("/v1/chat/completions", "/v1/embeddings", "/v1/images/generations")

_FAIL_RE = re.compile(r"#fail=(always|\d+)")
_STATUS_RE = re.compile(r"#status=(\d{3})")
_RATELIMIT_RE = re.compile(r"#ratelimit=(\d+)")
_DELAY_RE = re.compile(r"#delay=(\d+(?:\.\d*)?|\.\d+)")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def _word_count(text: str) -> int:
    """Count whitespace-separated words."""
    return len(text.split())


def _message_text(content: Any) -> str:
    """Flatten a chat message content (string or list of parts) to text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "\n".join(parts)
    return ""


def _last_user_text(body: dict[str, Any]) -> str:
    """Return the text of the last user message of a chat request."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _message_text(message.get("content"))
    return ""


_TRANSLATE_RE = re.compile(r"Translate each string in the JSON array from (\w+) into (\w+)")


def _translation_answer(body: dict[str, Any]) -> str | None:
    """Behave like a model that follows the project's translation instruction: '[de] text' each."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    system = next((_message_text(m.get("content")) for m in messages if m.get("role") == "system"), "")
    match = _TRANSLATE_RE.search(system)
    if not match:
        return None
    try:
        texts = json.loads(_last_user_text(body))
    except ValueError:
        return "not a JSON array"
    return json.dumps([f"[{match.group(2)}] {text}" for text in texts], ensure_ascii=False)


def _split_for_stream(text: str) -> list[str]:
    """Split an answer into at least three pieces (non-empty when len(text) >= 3)."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    if len(pieces) >= 3:
        return pieces
    cuts = [len(text) * i // 3 for i in range(4)]
    return [text[cuts[i] : cuts[i + 1]] for i in range(3)]


def embed_text(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """Return a deterministic L2-normalised feature-hashing embedding of ``text``."""
    vector = [0.0] * dimensions
    for word in text.lower().split():
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:7], "little") % dimensions
        vector[index] += 1.0 if digest[7] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        # Zero vectors break cosine similarity in callers; use a fixed unit vector.
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


def make_png(width: int = 64, height: int = 64, rgb: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """Build a valid solid-colour RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class _HTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server that knows its owning OpenAIServer."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: OpenAIServer) -> None:
        """Bind the server and remember the owner."""
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore client disconnects (e.g. after a client-side timeout)."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Request handler implementing the fake OpenAI endpoints."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        """Track the connection so stop() can close it."""
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        """Untrack the connection."""
        self.server.owner._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        """Handle GET requests."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Handle POST requests."""
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        """Record the request and route it, turning handler bugs into HTTP 500."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0].rstrip("/")
        owner = self.server.owner
        owner._record(method, path, body, text, {k.lower(): v for k, v in self.headers.items()})
        try:
            self._route(method, path, body, text)
        except OSError:
            self.close_connection = True
        except Exception as exc:
            # Surface bugs as a visible 500, not a dropped connection the SDK retries.
            traceback.print_exc()
            self._send_error(500, f"openai_server bug: {exc!r}")

    def _route(self, method: str, path: str, body: Any, text: str) -> None:
        """Apply rate limits and directives, then call the endpoint."""
        owner = self.server.owner
        if method == "GET" and path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [_model(m) for m in MODELS]})
            return
        if method == "GET" and path.startswith("/v1/models/"):
            self._send_json(200, _model(path.rsplit("/", 1)[1]))
            return
        if method != "POST" or path not in COUNTED_PATHS:
            self._send_error(404, f"Unknown endpoint {method} {path}")
            return
        if not isinstance(body, dict):
            self._send_error(400, "Request body must be a JSON object")
            return
        retry_after = owner._take_rpm_slot()
        if retry_after is not None:
            self._send_error(
                429,
                "Rate limit reached (server-wide rpm limit)",
                retry_after=retry_after,
            )
            return

        directive_text = text + "\n" + json.dumps(body, ensure_ascii=False)
        key = path + "\x00" + _request_key(path, body)
        seen = owner._bump(key)
        delay = _DELAY_RE.search(directive_text)
        if delay:
            time.sleep(float(delay.group(1)))
        status = _STATUS_RE.search(directive_text)
        if status:
            code = int(status.group(1))
            self._send_error(code, f"Forced status {code}", retry_after=1 if code == 429 else None)
            return
        ratelimit = _RATELIMIT_RE.search(directive_text)
        limited = int(ratelimit.group(1)) if ratelimit else 0
        if seen < limited:
            self._send_error(429, "Rate limit reached (#ratelimit directive)", retry_after=1)
            return
        fail = _FAIL_RE.search(directive_text)
        if fail and (fail.group(1) == "always" or seen - limited < int(fail.group(1))):
            self._send_error(
                500,
                "The server had an error while processing your request (#fail directive)",
            )
            return
        stream = bool(body.get("stream")) and path == "/v1/chat/completions"
        if "#malformed" in directive_text:
            if stream:
                self._send_stream([b'data: {"choices": [\n\n'])
            else:
                self._send_raw(200, b'{"choices": [', "application/json")
            return
        if "#empty" in directive_text:
            if stream:
                self._send_stream([b'data: {"id": "x"}\n\n', b"data: [DONE]\n\n"])
            else:
                self._send_json(200, {"id": "x"})
            return

        if path == "/v1/chat/completions":
            self._chat(body, owner._next_id("chatcmpl"), stream)
        elif path == "/v1/embeddings":
            self._embeddings(body)
        else:
            self._images(body)

    def _chat(self, body: dict[str, Any], completion_id: str, stream: bool) -> None:
        """Answer a chat completion, streamed or not."""
        model = body.get("model") or "gpt-4o-mini"
        created = int(time.time())
        answer = _translation_answer(body) or "echo: " + _last_user_text(body)
        prompt_tokens = sum(
            _word_count(_message_text(m.get("content"))) for m in body.get("messages") or [] if isinstance(m, dict)
        )
        completion_tokens = _word_count(answer)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if not stream:
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": answer,
                                "refusal": None,
                            },
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": None,
                },
            )
            return

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
            }
            if include_usage:
                data["usage"] = None
            return data

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": piece}, None) for piece in _split_for_stream(answer)]
        events.append(chunk({}, "stop"))
        if include_usage:
            events.append({**chunk({}, None), "choices": [], "usage": usage})
        payloads = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
        self._send_stream([*payloads, b"data: [DONE]\n\n"])

    def _embeddings(self, body: dict[str, Any]) -> None:
        """Answer an embeddings request."""
        raw_input = body.get("input", "")
        inputs = (
            raw_input
            if isinstance(raw_input, list) and raw_input and not isinstance(raw_input[0], int)
            else [raw_input]
        )
        texts = [item if isinstance(item, str) else json.dumps(item) for item in inputs]
        dimensions = body.get("dimensions") or DEFAULT_EMBEDDING_DIMENSIONS
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(texts):
            vector = embed_text(item, int(dimensions))
            encoded: Any = vector
            if as_base64:
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(_word_count(t) for t in texts)
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model") or "text-embedding-3-small",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _images(self, body: dict[str, Any]) -> None:
        """Answer an image generation request with solid-colour PNGs."""
        prompt = str(body.get("prompt", ""))
        red, green, blue = hashlib.blake2b(prompt.encode(), digest_size=3).digest()
        png = base64.b64encode(make_png(rgb=(red, green, blue))).decode()
        count = int(body.get("n") or 1)
        self._send_json(
            200,
            {
                "created": int(time.time()),
                "data": [{"b64_json": png, "revised_prompt": prompt} for _ in range(count)],
            },
        )

    def _send_raw(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response with a Content-Length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        """Send a JSON response."""
        self._send_raw(status, json.dumps(data).encode(), "application/json", headers)

    def _send_error(self, status: int, message: str, retry_after: int | None = None) -> None:
        """Send an OpenAI-style error response."""
        error_type = "server_error" if status >= 500 else _ERROR_TYPES.get(status, "invalid_request_error")
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if status == 429:
            self.server.owner._count_rate_limited(retry_after)
        payload = {
            "error": {
                "message": message,
                "type": error_type,
                "param": None,
                "code": None,
            }
        }
        self._send_json(status, payload, headers)

    def _send_stream(self, events: list[bytes]) -> None:
        """Send server-sent events with chunked encoding, pausing between events."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i, event in enumerate(events):
            if i:
                time.sleep(self.server.owner.stream_chunk_delay)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _model(model_id: str) -> dict[str, Any]:
    """Describe a model."""
    return {
        "id": model_id,
        "object": "model",
        "created": 1700000000,
        "owned_by": "openai",
    }


def _request_key(path: str, body: dict[str, Any]) -> str:
    """Return the text that identifies a request for per-key directives."""
    if path == "/v1/chat/completions":
        return _last_user_text(body)
    if path == "/v1/embeddings":
        value = body.get("input", "")
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return str(body.get("prompt", ""))


class OpenAIServer:
    """Threaded fake OpenAI API server for tests and benchmarks."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rpm_limit: int | None = None,
        rpm_window: float = 60.0,
        stream_chunk_delay: float = STREAM_CHUNK_DELAY,
    ) -> None:
        """Bind the listening socket (port 0 picks a free port)."""
        self.stream_chunk_delay = stream_chunk_delay  # between streamed pieces, so streaming is visible
        self.rpm_limit = rpm_limit
        self.rpm_window = rpm_window
        self.requests: list[dict[str, Any]] = []
        self.rate_limited = 0
        self.rate_limited_at: list[tuple[float, int | None]] = []  # (when, Retry-After) of each 429
        self._texts: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._window: deque[float] = deque()
        self._ids = 0
        self._connections: set[socket.socket] = set()
        self._httpd = _HTTPServer((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """Return the API base URL, e.g. http://127.0.0.1:54321/v1."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIServer:
        """Serve in a daemon thread and return self."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket and open connections."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def serve_forever(self) -> None:
        """Serve in the current thread until interrupted."""
        try:
            self._httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._httpd.server_close()

    def __enter__(self) -> Self:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()

    def calls_for(self, marker: str) -> int:
        """Count chat/embedding/image requests whose JSON body text contains ``marker``."""
        with self._lock:
            return sum(1 for path, text in self._texts if path in COUNTED_PATHS and marker in text)

    def reset(self) -> None:
        """Forget recorded requests, per-key counters and the rate-limit window."""
        with self._lock:
            self.requests.clear()
            self._texts.clear()
            self._seen.clear()
            self._window.clear()
            self.rate_limited = 0
            self.rate_limited_at.clear()

    def _record(self, method: str, path: str, body: Any, text: str, headers: dict[str, str]) -> None:
        """Store a received request."""
        # Keep both the raw and re-serialised text so markers match regardless of JSON escaping.
        searchable = text if body is None else text + "\n" + json.dumps(body, ensure_ascii=False)
        with self._lock:
            self.requests.append(
                {"method": method, "path": path, "body": body, "headers": headers, "at": time.monotonic()}
            )
            self._texts.append((path, searchable))

    def _bump(self, key: str) -> int:
        """Return how many requests with ``key`` were seen before this one."""
        with self._lock:
            seen = self._seen.get(key, 0)
            self._seen[key] = seen + 1
            return seen

    def _take_rpm_slot(self) -> int | None:
        """Reserve a slot in the sliding window, or return the Retry-After seconds."""
        if self.rpm_limit is None:
            return None
        with self._lock:
            now = time.monotonic()
            while self._window and self._window[0] <= now - self.rpm_window:
                self._window.popleft()
            if len(self._window) >= self.rpm_limit:
                return max(1, math.ceil(self._window[0] + self.rpm_window - now))
            self._window.append(now)
            return None

    def _count_rate_limited(self, retry_after: int | None = None) -> None:
        """Count one served 429."""
        with self._lock:
            self.rate_limited += 1
            self.rate_limited_at.append((time.monotonic(), retry_after))

    def _next_id(self, prefix: str) -> str:
        """Return a unique response id."""
        with self._lock:
            self._ids += 1
            return f"{prefix}-{self._ids}"

    def _track(self, conn: socket.socket, add: bool) -> None:
        """Add or remove an open client connection."""
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground."""
    parser = argparse.ArgumentParser(description="Fake OpenAI API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rpm-limit", type=int, default=None)
    parser.add_argument("--stream-chunk-delay", type=float, default=STREAM_CHUNK_DELAY)
    args = parser.parse_args(argv)
    server = OpenAIServer(args.host, args.port, rpm_limit=args.rpm_limit, stream_chunk_delay=args.stream_chunk_delay)
    print(server.base_url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
