"""Retry policy: when a failed attempt may be repeated, and how long to wait first.

Retries are the classic way a small outage becomes a storm, so each one must pass every
check: attempts left, a call safe to repeat, a body we can send again, a deadline that
still covers a typical attempt, and a per-route budget (retries at most `budget_ratio`
of recent requests, with a floor so quiet routes still retry; Finagle/Envoy style).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

from proxy.config.schema import RetrySpec

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


def retryable_status(status: int) -> bool:
    """502/503/504 and upstream 429 (after its Retry-After); never other 4xx or a 500."""
    return status in RETRYABLE_STATUS


def backoff_s(attempt: int, spec: RetrySpec, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max_backoff, backoff * 2**(attempt-1))] seconds.

    `attempt` is the retry number, from 1. Full jitter spreads a crowd of clients that
    failed together, so they do not all come back at the same instant."""
    exp = min(max(attempt - 1, 0), 30)
    cap_ms = min(spec.max_backoff_ms, spec.backoff_ms * 2**exp)
    return rng.uniform(0.0, cap_ms / 1000)


def retry_after_from_header(
    value: str | None, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds from a Retry-After value (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())


def next_delay_s(
    attempt: int, spec: RetrySpec, rng: random.Random, retry_after_s: float | None = None
) -> float:
    """The wait before retry `attempt`: the jittered backoff, or longer if upstream asked."""
    delay = backoff_s(attempt, spec, rng)
    return delay if retry_after_s is None else max(delay, retry_after_s)


class RetryBudget:
    """Retries allowed in the last `window_s`: max(budget_ratio * requests,
    min_retries_per_s * window_s). Counted in one-second buckets: constant memory."""

    def __init__(
        self, spec: RetrySpec, now: Callable[[], float] = time.monotonic, window_s: int = 10
    ) -> None:
        self.spec = spec
        self.window_s = window_s
        self._now = now
        self._epochs = [-1] * window_s
        self._requests = [0] * window_s
        self._retries = [0] * window_s

    def _slot(self) -> int:
        epoch = int(self._now())
        slot = epoch % self.window_s
        if self._epochs[slot] != epoch:
            self._epochs[slot], self._requests[slot], self._retries[slot] = epoch, 0, 0
        return slot

    def _totals(self) -> tuple[int, int]:
        oldest = int(self._now()) - self.window_s
        live = [i for i, e in enumerate(self._epochs) if e > oldest]
        return sum(self._requests[i] for i in live), sum(self._retries[i] for i in live)

    def record_request(self) -> None:
        """Count an original call (not a retry)."""
        self._requests[self._slot()] += 1

    def record_retry(self) -> None:
        """Count a retry that is about to start."""
        self._retries[self._slot()] += 1

    def can_retry(self) -> bool:
        """Read-only: would one more retry stay within the budget?"""
        requests, retries = self._totals()
        allowed = max(
            self.spec.budget_ratio * requests, self.spec.min_retries_per_s * self.window_s
        )
        return retries + 1 <= allowed + 1e-9


def retry_refusal(
    attempt: int,
    spec: RetrySpec,
    idempotent: bool,
    body_replayable: bool,
    deadline_remaining_s: float,
    observed_latency_s: float,
    budget: RetryBudget,
    delay_s: float = 0.0,
) -> str | None:
    """Why attempt `attempt + 1` must not start (a short reason for logs), or None.

    `attempt` counts attempts made so far (1 after the first failed). Pure: the budget is
    only read; the caller calls `budget.record_retry()` when it does retry."""
    if attempt > spec.max:
        return "attempts"
    if not idempotent:
        return "not_idempotent"  # SECURITY: never repeat a write
    if not body_replayable:
        return "body_streamed"
    if deadline_remaining_s <= 0 or deadline_remaining_s < delay_s + observed_latency_s:
        return "deadline"
    if not budget.can_retry():
        return "budget"
    return None


class EwmaLatency:
    """Exponentially weighted mean of upstream latency, for the deadline check.

    Starts at 0 (no evidence: only the deadline itself limits the first retries)."""

    __slots__ = ("alpha", "samples", "value")

    def __init__(self, alpha: float = 0.2) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.value = 0.0
        self.samples = 0

    def observe(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0:
            return
        self.value = seconds if self.samples == 0 else self.value + self.alpha * (
            seconds - self.value
        )
        self.samples += 1
