"""Event-stream clients for bench_streams, run as their own process (no Django).

`--mode http`: one HTTP/1.1 connection per task to `GET /api/v1/tasks/{id}/events/` with the API
key, read as Server-Sent Events (chunked). `--mode redis`: the baseline, one bare `redis.asyncio`
subscriber per task doing `XREAD BLOCK` on the task's stream (no HTTP, no ASGI, no Django).

Every event the benchmark publishes carries the wall-clock time of the change (`bench <t>` in its
progress message, or `{"bench_at": t}` as its result); a client notes `now - t` when the event
arrives. Prints one JSON line once every client is listening (`{"ready": n, ...}`), then, when every
stream has seen its final state (or --timeout passed), one JSON line with the delays in ms.
Raw asyncio sockets rather than an HTTP library: the clients share the machine with the server,
so the less they cost, the less of their own time ends up in the delays.
"""

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

FINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED"}


class Tally:
    def __init__(self, clients: int) -> None:
        self.listening = 0
        self.clients = clients
        self.all_listening = asyncio.Event()
        self.failures: dict[str, int] = {}
        self.delays: list[float] = []  # ms, progress events
        self.final_delays: list[float] = []  # ms, final states
        self.events = 0  # every event with a timestamp (progress and final)
        self.other_events = 0  # snapshots and anything without a timestamp
        self.finals = 0
        self.duplicates = 0

    def listening_one(self) -> None:
        self.listening += 1
        self._check()

    def failed(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1
        self._check()

    def _check(self) -> None:
        if self.listening + sum(self.failures.values()) >= self.clients:
            self.all_listening.set()

    def arrived(self, event: dict, seen: set[str], arrived_at: float) -> bool:
        """Note one event; True if it was a final state."""
        stamp = None
        message = event.get("progress_message") or ""
        if message.startswith("bench "):
            stamp = message
        result = event.get("result")
        if isinstance(result, dict) and "bench_at" in result:
            stamp = f"bench {result['bench_at']}"
        final = event.get("state") in FINAL_STATES
        if stamp is None:
            self.other_events += 1
        elif stamp in seen:  # a change sent twice (allowed by the view's contract); counted once
            self.duplicates += 1
        else:
            seen.add(stamp)
            self.events += 1
            delay = 1000 * (arrived_at - float(stamp.split()[1]))
            (self.final_delays if final else self.delays).append(delay)
        if final:
            self.finals += 1
        return final


async def _http_client(args: argparse.Namespace, task_id: str, tally: Tally) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port, limit=1 << 20)
    except OSError as exc:
        tally.failed(f"connect: {exc.__class__.__name__}")
        return
    try:
        writer.write(
            (
                f"GET /api/v1/tasks/{task_id}/events/ HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
                f"X-API-Key: {args.key}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        status_line = await reader.readline()
        status = status_line.split()[1].decode() if status_line else "closed"
        chunked = False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if status != "200":
            tally.failed(f"HTTP {status}")
            return
        buffer, seen, first = b"", set(), True
        while True:
            if chunked:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    break
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    break
            arrived_at = time.time()
            buffer += data
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                payload = [line[6:] for line in block.split(b"\n") if line.startswith(b"data: ")]
                if not payload:
                    continue
                event = json.loads(b"\n".join(payload))
                if first:  # the record's current state: the stream is open
                    first = False
                    tally.other_events += 1
                    tally.listening_one()
                    if event.get("state") in FINAL_STATES:
                        tally.finals += 1
                        return
                    continue
                if tally.arrived(event, seen, arrived_at):
                    return
        if first:
            tally.failed("closed before the first event")
    except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
        tally.failed(f"{exc.__class__.__name__}")
    finally:
        writer.close()


async def _redis_client(args: argparse.Namespace, task_id: str, tally: Tally) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(args.redis_url, socket_connect_timeout=5, socket_timeout=30)  # > the 15 s block
    key = f"jobs:events:{task_id}"
    try:
        tail = await redis.xrevrange(key, count=1)
        cursor = tail[0][0].decode() if tail else "0-0"
        tally.listening_one()
        seen: set[str] = set()
        while True:
            answer = await redis.xread({key: cursor}, block=15000, count=100)
            arrived_at = time.time()
            for entry_id, values in answer[0][1] if answer else []:
                cursor = entry_id.decode()
                if tally.arrived(json.loads(values[b"data"]), seen, arrived_at):
                    return
    except Exception as exc:
        tally.failed(f"{exc.__class__.__name__}")
    finally:
        await redis.aclose()


async def main(args: argparse.Namespace) -> None:
    task_ids = json.loads(Path(args.tasks).read_text())
    tally = Tally(len(task_ids))
    client = _http_client if args.mode == "http" else _redis_client
    started = time.perf_counter()
    clients = []
    for task_id in task_ids:  # opened a few at a time: a connection storm would only test the backlog
        clients.append(asyncio.create_task(client(args, task_id, tally)))
        await asyncio.sleep(0.002)
    with contextlib.suppress(TimeoutError):  # then the first line says how many did listen
        await asyncio.wait_for(tally.all_listening.wait(), timeout=args.open_timeout)
    print(
        json.dumps(
            {"ready": tally.listening, "failures": tally.failures, "open_seconds": time.perf_counter() - started}
        ),
        flush=True,
    )
    _, pending = await asyncio.wait(clients, timeout=args.timeout)
    for task in pending:
        task.cancel()
    print(
        json.dumps(
            {
                "listening": tally.listening,
                "failures": tally.failures,
                "unfinished": len(pending),
                "events": tally.events,
                "other_events": tally.other_events,
                "duplicates": tally.duplicates,
                "finals": tally.finals,
                "delays_ms": [round(d, 3) for d in tally.delays],
                "final_delays_ms": [round(d, 3) for d in tally.final_delays],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["http", "redis"], default="http")
    parser.add_argument("--tasks", required=True, help="a JSON file with the task ids, one client each")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="", help="the API key of the tasks' owner (http)")
    parser.add_argument("--redis-url", default="", help="the broker's URL (redis)")
    parser.add_argument("--open-timeout", type=float, default=180)
    parser.add_argument("--timeout", type=float, default=300, help="seconds, after all are listening")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
