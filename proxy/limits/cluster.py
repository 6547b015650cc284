"""Cluster-wide rate limit: the GCRA step of gcra.py run atomically inside Redis, so every
CallWarden replica spends from one bucket per key.

Redis time is the clock (one clock for all pods, no skew). While Redis is unreachable
the limiter degrades as the rules say: `on_store_error: allow` falls back to a per-pod
limiter with the same spec, `deny` refuses. Timeouts are short and a failed store is
not tried again until a cool-down has passed, so a dead or hung Redis never stalls calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from proxy.config.schema import RateSpec, RedisSpec
from proxy.limits.gcra import RateDecision, admitted, refused, windows_for
from proxy.limits.local import RateKeyTuple, RateLimiter

log = logging.getLogger(__name__)

# KEYS[1]: hash of window index -> TAT (ms). ARGV: now_ms ("" = Redis TIME), max_wait_ms,
# then interval_ms and burst per window. Returns allowed, wait_ms, and per window the
# backlog in ms after the decision (strings: Redis truncates Lua numbers to integers).
GCRA_LUA = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local max_wait = tonumber(ARGV[2])
local n = (#ARGV - 2) / 2
local fields = {}
for i = 1, n do fields[i] = tostring(i) end
local stored = redis.call('HMGET', KEYS[1], unpack(fields))
local tats = {}
local wait = -1e300
for i = 1, n do
  local interval = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(stored[i]) or now
  if tat < now then tat = now end
  tats[i] = tat
  local need = tat + interval - now - burst * interval
  if need > wait then wait = need end
end
local out = {}
if wait > max_wait + 0.000001 then
  out[1] = '0'
  out[2] = string.format('%.17g', wait)
  for i = 1, n do out[2 + i] = string.format('%.17g', tats[i] - now) end
  return out
end
if wait < 0 then wait = 0 end
local at = now + wait
local longest = 0
for i = 1, n do
  local new = math.max(tats[i], at) + tonumber(ARGV[1 + 2 * i])
  redis.call('HSET', KEYS[1], fields[i], string.format('%.17g', new))
  out[2 + i] = string.format('%.17g', new - at)
  if new - now > longest then longest = new - now end
end
redis.call('PEXPIRE', KEYS[1], math.ceil(longest) + 1000)
out[1] = '1'
out[2] = string.format('%.17g', wait)
return out
"""

STORE_ERRORS = (RedisError, OSError, TimeoutError)


def redis_key(prefix: str, key: RateKeyTuple) -> str:
    """Unambiguous (JSON) and bounded (long keys hashed): tenant ids are caller input."""
    body = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
    if len(body) > 200:
        body = "h:" + hashlib.sha256(body.encode()).hexdigest()
    return f"{prefix}:{body}"


class ClusterRateLimiter:
    def __init__(
        self,
        spec: RateSpec,
        redis_spec: RedisSpec,
        key_prefix: str,
        *,
        now: Callable[[], float] = time.monotonic,
        server_time: Callable[[], float] | None = None,
        cooldown_s: float = 1.0,
        fallback_max_keys: int = 10_000,
        max_connections: int = 16,
    ) -> None:
        """`server_time` (seconds) replaces Redis TIME, for exact tests only.
        At most `max_connections` calls talk to Redis at once; others wait up to the store
        timeout for a turn, then take the degraded path for that call only."""
        self.spec = spec
        self.windows = windows_for(spec)
        self.key_prefix = f"callwarden:rl:{key_prefix}"
        self.fallback = RateLimiter(spec, fallback_max_keys, now)
        self.store_errors = 0
        self.busy = 0
        self._gate = asyncio.Semaphore(max_connections)
        self._max_connections = max_connections
        self._redis_spec = redis_spec
        self._timeout_s = redis_spec.timeout_ms / 1000
        self._now = now
        self._server_time = server_time
        self._cooldown_s = cooldown_s
        self._down_until: float | None = None
        self._client: Redis | None = None
        self._script: AsyncScript | None = None
        self._window_args: list[str] = []
        for w in self.windows:
            self._window_args += [repr(w.interval_s * 1000), repr(w.burst)]

    @property
    def healthy(self) -> bool:
        return self._down_until is None

    async def acquire(self, key: RateKeyTuple, max_wait_s: float = 0.0) -> RateDecision:
        """One permit from the shared bucket, waiting up to `max_wait_s` for a slot."""
        max_wait_s = max(0.0, max_wait_s)
        now = self._now()
        if self._down_until is not None and now < self._down_until:
            return await self._degraded(key, max_wait_s)
        if self._down_until is not None:
            # Cool-down over: this call probes; calls meanwhile keep the fallback.
            self._down_until = now + self._cooldown_s
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._gate.acquire()
        except TimeoutError:
            self.busy += 1  # our own pool is saturated: Redis itself may be fine
            if self.busy % 1000 == 1:
                log.warning("cluster rate limit store busy (%s): %d calls decided locally",
                            self.key_prefix, self.busy)
            return await self._degraded(key, max_wait_s)
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                decision = await self._eval(key, max_wait_s)
        except STORE_ERRORS as exc:
            self._store_failed(exc)
            return await self._degraded(key, max_wait_s)
        finally:
            self._gate.release()
        if self._down_until is not None:
            log.warning("cluster rate limit store is back (%s)", self.key_prefix)
            self._down_until = None
        if decision.allowed and decision.wait_s > 0:
            await asyncio.sleep(decision.wait_s)
        return decision

    async def _eval(self, key: RateKeyTuple, max_wait_s: float) -> RateDecision:
        script = self._script
        if script is None:
            self._client = Redis.from_url(
                self._redis_spec.url,
                socket_timeout=self._timeout_s,
                socket_connect_timeout=self._timeout_s,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
                max_connections=self._max_connections,
            )
            # EVALSHA, reloaded by redis-py on NOSCRIPT (a restarted Redis forgets scripts).
            script = self._script = self._client.register_script(GCRA_LUA)
        now_arg = "" if self._server_time is None else repr(self._server_time() * 1000)
        args = [now_arg, repr(max_wait_s * 1000), *self._window_args]
        reply = await script(keys=[redis_key(self.key_prefix, key)], args=args)
        values = [float(v) for v in reply]
        levels_s = [v / 1000 for v in values[2:]]
        if values[0] == 1:
            return admitted(levels_s, self.windows, values[1] / 1000)
        return refused(levels_s, self.windows, values[1] / 1000)

    def _store_failed(self, exc: BaseException) -> None:
        self.store_errors += 1
        if self._down_until is None:
            # Class name only: a redis URL in a message may carry a password.
            log.warning(
                "cluster rate limit store unreachable (%s, %s): on_store_error=%s",
                self.key_prefix, type(exc).__name__, self.spec.on_store_error,
            )
        self._down_until = self._now() + self._cooldown_s

    async def _degraded(self, key: RateKeyTuple, max_wait_s: float) -> RateDecision:
        if self.spec.on_store_error == "allow":
            d = await self.fallback.acquire(key, max_wait_s)
        else:
            w = self.windows[0]
            left = (self._down_until or self._now()) - self._now()
            d = RateDecision(False, max(left, 0.0), w.limit, 0, 0.0)
        return RateDecision(d.allowed, d.retry_after_s, d.limit, d.remaining, d.reset_s,
                            d.wait_s, degraded=True)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = self._script = None
