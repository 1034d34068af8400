"""An HTTP/1.1 load generator for bench_accept, run as its own process (no Django, no dependencies).

Closed loop (`--connections N`, no `--rate`): N keep-alive connections each send the next
request as soon as the previous answer arrived; this finds the most the server can take.
Open loop (`--rate R`): requests are due at fixed intervals whatever the server does, and a
request's latency counts from when it was due (so a stall is not hidden by sending less).
Prints one JSON object: requests, errors, statuses, seconds, per_second, p50_ms, p99_ms, max_ms.
"""

import argparse
import asyncio
import itertools
import json
import statistics
import time
from collections import Counter
from pathlib import Path


class ServerClosed(ConnectionError):
    """The server closed the connection without answering (uvicorn ends idle keep-alives after 5 s)."""


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
    """Send one request, read the whole answer; its status."""
    writer.write(payload)
    status_line = await reader.readline()
    if not status_line:
        raise ServerClosed("connection closed by the server before answering")
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(status_line.split()[1])


def _requests(args: argparse.Namespace) -> itertools.cycle:
    """Ready-made request bytes, one per API key, cycled."""
    keys = json.loads(Path(args.keys).read_text()) if args.keys else [""]
    body = args.body.encode()
    payloads = []
    for key in keys:
        head = (
            f"POST {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        if key:
            head += f"X-API-Key: {key}\r\n"
        payloads.append((head + "\r\n").encode() + body)
    return itertools.cycle(payloads)


class Results:
    def __init__(self, measure_from: float) -> None:
        self.measure_from = measure_from
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.errors = 0

    def add(self, due: float, status: int | None) -> None:
        if due < self.measure_from:
            return  # warm-up
        if status is None or status >= 300:
            self.errors += 1
        self.statuses[str(status)] += 1
        self.latencies.append(time.perf_counter() - due)


async def _closed_loop(args: argparse.Namespace, results: Results, stop_at: float) -> None:
    payloads = _requests(args)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        while time.perf_counter() < stop_at:
            due = time.perf_counter()
            try:
                status = await _exchange(reader, writer, next(payloads))
            except (ConnectionError, asyncio.IncompleteReadError):
                results.add(due, None)
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
                continue
            results.add(due, status)
        writer.close()

    await asyncio.gather(*(connection() for _ in range(args.connections)))


async def _open_loop(args: argparse.Namespace, results: Results, started: float, stop_at: float) -> None:
    payloads = _requests(args)
    idle: asyncio.LifoQueue = asyncio.LifoQueue()  # the connection used last is the one least likely closed
    for _ in range(args.connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", args.port))

    async def one(due: float) -> None:
        reader, writer = await idle.get()  # waiting for a free connection counts as latency
        payload = next(payloads)
        try:
            try:
                status = await _exchange(reader, writer, payload)
            except (ServerClosed, ConnectionResetError, BrokenPipeError):  # an idle keep-alive the server closed
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
                status = await _exchange(reader, writer, payload)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            results.add(due, None)
            idle.put_nowait(await asyncio.open_connection("127.0.0.1", args.port))
            return
        results.add(due, status)
        idle.put_nowait((reader, writer))

    tasks = []
    for number in itertools.count():
        due = started + number / args.rate
        if due >= stop_at:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


async def main(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    measure_from = started + args.warmup
    stop_at = measure_from + args.seconds
    results = Results(measure_from)
    if args.rate:
        await _open_loop(args, results, started, stop_at)
    else:
        await _closed_loop(args, results, stop_at)
    latencies = results.latencies
    return {
        "requests": len(latencies),
        "errors": results.errors,
        "statuses": dict(results.statuses),
        "seconds": args.seconds,
        "per_second": len(latencies) / args.seconds,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body", default="{}")
    parser.add_argument("--keys", help="a JSON file with a list of API keys, used in turn")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, help="requests per second (open loop); closed loop without it")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
