"""Provider budgets: requests and tokens per minute per provider and model, shared by every worker.

Each budget is a sliding window in Redis: a sorted set of the calls granted in the last minute
(scored by Redis' own clock, so every worker agrees on the time) with their token counts, and
a running total of those tokens. One Lua script checks and takes a slot atomically, so any
number of workers together never exceed a limit. A call is granted only if, counting it, the
last minute holds at most `requests_per_minute` calls and `tokens_per_minute` tokens; otherwise
the script answers how long until enough of the window expires, and nothing is taken.

Tokens are not known before a call: a grant reserves an estimate, and `budget_settle` replaces
it with what the provider reported. A 429 from the provider pauses the budget for everyone
(`budget_pause`, from its Retry-After), so the other workers wait instead of collecting 429s.

The window is a little longer than a minute (AI_BUDGET_SAFETY_SECONDS): a call granted at t
reaches the provider a few milliseconds later, and the provider's own minute starts there.

Limits come from `ai.models.ProviderBudget` rows (the admin edits them; AI_BUDGETS seeds them),
read at most every AI_BUDGET_REFRESH_SECONDS per process. A model without a row uses its
provider's "*" row if there is one, and is unlimited otherwise (but still paused by a 429, and
its use still shown). When Redis cannot be reached the
call goes ahead unbudgeted (the provider's own 429s still slow it down): a budget must never be
the reason work stops.
"""

import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from redis import Redis, RedisError

logger = logging.getLogger(__name__)

ANY_MODEL = "*"
KEY_PREFIX = "ai:budget"

# KEYS: calls (zset id -> granted ms), tokens (hash id -> tokens), total (tokens in the window),
#       paused (ms until which nobody may call).
# ARGV: window ms, requests per window (0: no limit), tokens per window (0: no limit), tokens
#       wanted, call id.
# Answers {1, 0} when granted, else {0, milliseconds to wait}.
_ACQUIRE = """
local calls, tokens, total, paused = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local window, rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wanted, id = tonumber(ARGV[4]), ARGV[5]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local paused_until = tonumber(redis.call('GET', paused) or '0')
if paused_until > now then
  return {0, paused_until - now}
end
local cutoff = now - window
local expired = redis.call('ZRANGEBYSCORE', calls, '-inf', cutoff)
if #expired > 0 then
  local freed = 0
  for start = 1, #expired, 500 do
    local stop = math.min(start + 499, #expired)
    local amounts = redis.call('HMGET', tokens, unpack(expired, start, stop))
    for _, amount in ipairs(amounts) do
      freed = freed + (tonumber(amount) or 0)
    end
    redis.call('HDEL', tokens, unpack(expired, start, stop))
  end
  redis.call('ZREMRANGEBYSCORE', calls, '-inf', cutoff)
  redis.call('DECRBY', total, freed)
end
local count = redis.call('ZCARD', calls)
local used = tonumber(redis.call('GET', total) or '0')
local wait = 0
if rpm > 0 and count >= rpm then
  local oldest = redis.call('ZRANGE', calls, count - rpm, count - rpm, 'WITHSCORES')
  wait = math.max(wait, tonumber(oldest[2]) + window - now + 1)
end
if tpm > 0 and count > 0 and used + wanted > tpm then
  -- wait until enough of the oldest calls leave the window (all of them for an outsized call)
  local excess = used + wanted - tpm
  if wanted > tpm then excess = used end
  local entries = redis.call('ZRANGE', calls, 0, -1, 'WITHSCORES')
  local freed = 0
  for i = 1, #entries, 2 do
    freed = freed + (tonumber(redis.call('HGET', tokens, entries[i])) or 0)
    if freed >= excess then
      wait = math.max(wait, tonumber(entries[i + 1]) + window - now + 1)
      break
    end
  end
end
if wait > 0 then
  return {0, wait}
end
redis.call('ZADD', calls, now, id)
redis.call('HSET', tokens, id, wanted)
redis.call('INCRBY', total, wanted)
for _, key in ipairs({calls, tokens, total}) do
  redis.call('PEXPIRE', key, window * 2)
end
return {1, 0}
"""

# KEYS: tokens, total. ARGV: call id, tokens actually used. Only while the call is in the window.
_SETTLE = """
local reserved = redis.call('HGET', KEYS[1], ARGV[1])
if not reserved then return 0 end
local delta = tonumber(ARGV[2]) - tonumber(reserved)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCRBY', KEYS[2], delta)
return delta
"""

# KEYS: paused. ARGV: milliseconds. Extends a pause, never shortens one.
_PAUSE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > current then
  redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1]))
end
return until_ms - now
"""


class BudgetExhausted(Exception):
    """No budget for this call within the wait a caller accepts; try again after `retry_after` s."""

    def __init__(self, provider: str, model: str, retry_after: float) -> None:
        self.provider, self.model, self.retry_after = provider, model, retry_after
        super().__init__(
            f"Waiting for the {provider} budget of {model} (requests or tokens per minute): "
            f"next try in {retry_after:.0f} s."
        )


@dataclass(frozen=True)
class Limits:
    """A budget's limits per minute; 0 means no limit."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0


@dataclass(frozen=True)
class Grant:
    """A call the budget let through; settle it with the tokens the call really used."""

    provider: str
    model: str
    call_id: str | None  # None: no budget applied (Redis unreachable)


@dataclass(frozen=True)
class Usage:
    """A budget's use over the current window, for the admin and the dashboard."""

    requests: int
    tokens: int
    paused_seconds: float


_client: Redis | None = None
_scripts: dict[str, object] = {}
_limits_lock = threading.Lock()
_limits_cache: tuple[float, dict[tuple[str, str], Limits]] = (0.0, {})


def budget_redis() -> Redis:
    """One client per process (thread-safe); short timeouts, so a dead Redis is noticed fast."""
    global _client
    if _client is None:
        _client = Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        for name, source in (("acquire", _ACQUIRE), ("settle", _SETTLE), ("pause", _PAUSE)):
            _scripts[name] = _client.register_script(source)
    return _client


def _keys(provider: str, model: str) -> list[str]:
    base = f"{KEY_PREFIX}:{provider}:{model}"
    return [f"{base}:calls", f"{base}:tokens", f"{base}:total", f"{base}:paused"]


def _window_ms() -> int:
    return int((60 + settings.AI_BUDGET_SAFETY_SECONDS) * 1000)


def budget_limits(provider: str, model: str) -> Limits:
    """The limits that apply to `model` of `provider` (its own row, else the provider's "*" row)."""
    global _limits_cache
    loaded_at, table = _limits_cache
    if time.monotonic() - loaded_at > settings.AI_BUDGET_REFRESH_SECONDS:
        with _limits_lock:
            from ai.models import ProviderBudget  # the app registry is ready by the first call

            rows = ProviderBudget.objects.filter(enabled=True).values_list(
                "provider", "model", "requests_per_minute", "tokens_per_minute"
            )
            table = {(p, m): Limits(rpm or 0, tpm or 0) for p, m, rpm, tpm in rows}
            _limits_cache = (time.monotonic(), table)
    return table.get((provider, model)) or table.get((provider, ANY_MODEL)) or Limits()


def budget_limits_forget() -> None:
    """Read the limits again on the next call (after an edit in this process)."""
    global _limits_cache
    _limits_cache = (0.0, {})


def budget_acquire(provider: str, model: str, *, tokens: int, max_wait: float | None = None) -> Grant:
    """Take one call and `tokens` from the budget, waiting up to `max_wait` seconds for room.

    Raises BudgetExhausted when the wait would be longer, so the caller can re-schedule itself
    (a task with a countdown) instead of holding a worker. Default wait: AI_BUDGET_MAX_WAIT_SECONDS.
    """
    limits = budget_limits(provider, model)  # even without limits: a pause applies, and use is shown
    max_wait = settings.AI_BUDGET_MAX_WAIT_SECONDS if max_wait is None else max_wait
    deadline = time.monotonic() + max_wait
    call_id = uuid.uuid4().hex
    while True:
        try:
            budget_redis()
            granted, wait_ms = _scripts["acquire"](
                keys=_keys(provider, model),
                args=[_window_ms(), limits.requests_per_minute, limits.tokens_per_minute, max(0, tokens), call_id],
            )
        except RedisError as exc:
            logger.warning("provider budget unavailable, calling %s/%s unbudgeted: %s", provider, model, exc)
            return Grant(provider, model, None)
        if granted:
            return Grant(provider, model, call_id)
        wait = wait_ms / 1000
        if time.monotonic() + wait > deadline:
            raise BudgetExhausted(provider, model, wait)
        time.sleep(wait + random.uniform(0, 0.05))  # the jitter spreads waiters that woke together


def budget_countdown(exc: BudgetExhausted) -> float:
    """When a task that found no budget should run again: a little after room is expected, spread
    out, and never later than AI_BUDGET_MAX_COUNTDOWN_SECONDS (under the visibility timeout)."""
    spread = random.uniform(0, min(1.0, exc.retry_after / 10))
    return min(exc.retry_after + spread, settings.AI_BUDGET_MAX_COUNTDOWN_SECONDS)


def budget_settle(grant: Grant, *, tokens: int) -> None:
    """Replace a grant's token estimate with the tokens the call really used."""
    if grant.call_id is None:
        return
    keys = _keys(grant.provider, grant.model)
    try:
        budget_redis()
        _scripts["settle"](keys=[keys[1], keys[2]], args=[grant.call_id, max(0, tokens)])
    except RedisError as exc:
        logger.warning("could not settle a provider budget: %s", exc)


def budget_pause(provider: str, model: str, seconds: float) -> None:
    """Nobody calls `model` of `provider` for `seconds` (the provider answered 429 Retry-After)."""
    try:
        budget_redis()
        _scripts["pause"](keys=[_keys(provider, model)[3]], args=[max(1, int(seconds * 1000))])
    except RedisError as exc:
        logger.warning("could not pause a provider budget: %s", exc)


def budget_usage(provider: str, model: str) -> Usage:
    """Calls and tokens in the current window, and how long a pause still lasts."""
    calls, tokens, _, paused = _keys(provider, model)
    client = budget_redis()
    now_seconds, now_micro = client.time()
    now_ms = now_seconds * 1000 + now_micro // 1000
    live = client.zrangebyscore(calls, now_ms - _window_ms() + 1, "+inf")
    amounts = client.hmget(tokens, live) if live else []
    paused_until = int(client.get(paused) or 0)
    return Usage(
        requests=len(live),
        tokens=sum(int(amount or 0) for amount in amounts),
        paused_seconds=max(0.0, (paused_until - now_ms) / 1000),
    )


def budget_reset(provider: str, model: str) -> None:
    """Forget a budget's window and pause (the admin's reset action, and tests)."""
    budget_redis().delete(*_keys(provider, model))
