"""Benchmark data: tiers and users made for a run, rounds of prompts, and cleaning up after them.

Benchmark users are named `b-<area>-<n>` (never `bench-...`, which bench_users owns) and pinned
to their tier; whatever a round created (requests, task records, stored results, event streams,
queued messages) is deleted when the round is done.
"""

import time
from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone
from django_celery_results.models import TaskResult

from bench.processes import Worker
from jobs.events import events_redis, stream_key
from jobs.models import FairLane, TaskRecord
from prompts.models import PromptRequest
from users.models import ApiKey, Tier, User
from users.services import api_key_create, tiers_default_ensure

UNLIMITED = 1_000_000_000


def bench_tier(
    slug: str, *, max_in_flight: int, priority: str = "normal", daily_limit: int = UNLIMITED, weight: int = 1
) -> Tier:
    """A tier for one benchmark, with a daily limit that never caps a run."""
    tiers_default_ensure()
    tier, _ = Tier.objects.update_or_create(
        slug=slug,
        defaults={
            "name": f"Benchmark {slug}",
            "daily_request_limit": daily_limit,
            "max_prompt_length": 64_000,
            "queue_priority": priority,
            "max_in_flight": max_in_flight,
            "fair_share_weight": weight,
        },
    )
    return tier


def bench_users(prefix: str, count: int, tier: Tier, *, with_keys: bool = False) -> list[User]:
    """`count` users in `tier` (created once, reused), today's counters at zero; keys on `.api_key`."""
    users = []
    for number in range(count):
        user, _ = User.objects.get_or_create(username=f"{prefix}-{number}", defaults={"tier": tier})
        User.objects.filter(pk=user.pk).update(tier=tier, tier_pinned=True, requests_today=0, usage_date=None)
        user.tier, user.requests_today, user.usage_date = tier, 0, None
        if with_keys:
            ApiKey.objects.filter(user=user).delete()  # only the hash is kept: make a fresh one
            _, user.api_key = api_key_create(user=user)
        users.append(user)
    return users


def prompts_clean(users: Iterable[User]) -> int:
    """Delete the users' requests, task records, stored results, event streams and lanes."""
    user_ids = [user.pk for user in users]
    task_ids = [str(pk) for pk in TaskRecord.objects.filter(owner_id__in=user_ids).values_list("pk", flat=True)]
    requests = PromptRequest.objects.filter(owner_id__in=user_ids)
    task_ids += [str(pk) for pk in requests.values_list("task_id", flat=True)]
    task_ids = sorted({pk for pk in task_ids if pk and pk != "None"})
    deleted = PromptRequest.objects.filter(owner_id__in=user_ids).delete()[0]
    records_delete(task_ids)
    FairLane.objects.filter(owner_id__in=user_ids).delete()
    return deleted


def records_delete(task_ids: list[str], *, batch: int = 5_000) -> None:
    """Delete task records, their stored results and their event streams, in batches."""
    redis = events_redis()
    for start in range(0, len(task_ids), batch):
        ids = task_ids[start : start + batch]
        TaskRecord.objects.filter(pk__in=ids).delete()
        TaskResult.objects.filter(task_id__in=ids).delete()
        redis.delete(*[stream_key(pk) for pk in ids])


def queue_purge(*queues: str) -> None:
    """Drop the messages waiting in these queues (a kombu Redis queue is a list named after it)."""
    redis = events_redis()
    for queue in queues:
        redis.delete(queue, *[f"{queue}\x06\x16{priority}" for priority in range(10)])


def queue_length(queue: str) -> int:
    return int(events_redis().llen(queue))


def round_wait(*, owners: list[User], since_id: int, count: int, timeout: float) -> datetime:
    """Wait until `count` requests of `owners` (ids above `since_id`) are final; the last one's time."""
    owner_ids = [user.pk for user in owners]
    mine = PromptRequest.objects.filter(owner_id__in=owner_ids, pk__gt=since_id)
    deadline = time.monotonic() + timeout
    while True:
        done = mine.filter(completed_at__isnull=False).count()
        if done >= count:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {count} prompts finished within {timeout:.0f} s")
        time.sleep(0.1)
    failed = mine.exclude(status=PromptRequest.Status.COMPLETED).count()
    if failed:
        raise RuntimeError(f"{failed} of {count} prompts did not complete (see the worker log)")
    last = mine.order_by("-completed_at").values_list("completed_at", flat=True).first()
    return last or timezone.now()


def last_request_id() -> int:
    return PromptRequest.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def consumption_started(queue: str, *, waiting: int, timeout: float = 30) -> float:
    """The time (time.time()) the first of `waiting` messages left `queue`, polled every 2 ms.

    Rounds start timing here rather than when the consumer was resumed: a paused Redis
    consumer can take up to a second to look at its queue again, which a worker that never
    paused does not pay.
    """
    redis = events_redis()
    deadline = time.monotonic() + timeout
    while redis.llen(queue) >= waiting:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no message left {queue} within {timeout:.0f} s")
        time.sleep(0.002)
    return time.time()


def bare_round(worker: Worker, *, size: int, task: str, args: tuple = ()) -> float:
    """Tasks of the bare app acknowledged per second: queued while paused, timed until drained."""
    from bench import noop_app

    worker.pause(noop_app.NOOP_QUEUE)
    with noop_app.app.producer_or_acquire() as producer:
        for _ in range(size):
            noop_app.app.send_task(task, args=args, queue=noop_app.NOOP_QUEUE, producer=producer)
    redis = events_redis()
    worker.resume(noop_app.NOOP_QUEUE)
    started = consumption_started(noop_app.NOOP_QUEUE, waiting=size)
    deadline = started + size / 5 + 120
    while queue_length(noop_app.NOOP_QUEUE) or redis.hlen("unacked"):  # late acks: unacked until done
        if time.time() > deadline:
            raise RuntimeError("the bare worker did not drain its queue")
        time.sleep(0.005)
    return size / (time.time() - started)
