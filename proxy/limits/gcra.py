"""GCRA (generic cell rate algorithm): the one rate decision, shared by the per-pod limiter
and the Redis script so both refuse the same calls and report the same headers.

A bucket is one float per window, its theoretical arrival time (TAT). That is the same
leaky bucket as aiolimiter's AsyncLimiter (level = (TAT - now) / interval, admit when
level + 1 <= capacity; tests/limits/test_gcra.py checks the equivalence), but it can also
say *when* the next permit frees (Retry-After), how many are left (RateLimit-Remaining),
check two windows before spending from either, and reserve a future slot for `wait_ms`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.config.schema import RateSpec

EPS_S = 1e-9
"""Float slack: ten sums of 0.1 s must still admit the tenth permit."""


@dataclass(frozen=True, slots=True)
class Window:
    burst: float
    """Permits that may arrive at once: the per-window limit, at least one."""
    interval_s: float
    """Seconds between permits at the sustained rate."""
    tolerance_s: float
    """burst * interval: how far ahead of now a bucket's TAT may run."""
    limit: int
    """Whole permits per window, for RateLimit-Limit."""

    @classmethod
    def of(cls, rate: float, period_s: float) -> Window:
        burst = max(rate, 1.0)
        interval = period_s / rate
        return cls(burst, interval, burst * interval, max(1, math.floor(burst + EPS_S)))


def windows_for(spec: RateSpec) -> tuple[Window, ...]:
    """Per-second and per-minute windows, both enforced (a call spends from each)."""
    out: list[Window] = []
    for rate, period in ((spec.per_second, 1.0), (spec.per_minute, 60.0)):
        if rate is not None:
            out.append(Window.of(rate, period))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_s: float
    """Refused: seconds until a permit frees. Allowed: 0."""
    limit: int
    remaining: int
    reset_s: float
    """Seconds until the binding window is full again."""
    wait_s: float = 0.0
    """Allowed after waiting: the caller sleeps this long first (a reserved slot)."""
    degraded: bool = False
    """Decided without the shared store (Redis unreachable): count it, warn about it."""

    def headers(self) -> tuple[tuple[str, str], ...]:
        """RateLimit-* (IETF draft) always; Retry-After (whole seconds, >= 1) on refusal."""
        out = (
            ("RateLimit-Limit", str(self.limit)),
            ("RateLimit-Remaining", str(self.remaining)),
            ("RateLimit-Reset", str(max(0, math.ceil(self.reset_s - EPS_S)))),
        )
        if not self.allowed:
            out = (("Retry-After", str(retry_after_header(self.retry_after_s))), *out)
        return out


def retry_after_header(seconds: float) -> int:
    return max(1, math.ceil(seconds - EPS_S))


def decide(
    tats: Sequence[float], windows: Sequence[Window], now: float, max_wait_s: float = 0.0
) -> tuple[RateDecision, tuple[float, ...] | None]:
    """Pure step: the decision and the new TATs (None when refused: nothing spent)."""
    wait = -math.inf
    for tat, w in zip(tats, windows, strict=True):  # seconds until each window admits one more
        need = (tat if tat > now else now) + w.interval_s - now - w.tolerance_s
        if need > wait:
            wait = need
    if wait > max_wait_s + EPS_S:
        return refused([tat - now for tat in tats], windows, wait), None
    at = now + wait if wait > 0 else now
    new = tuple(
        (tat if tat > at else at) + w.interval_s for tat, w in zip(tats, windows, strict=True)
    )
    return admitted([t - at for t in new], windows, wait if wait > 0 else 0.0), new


def admitted(levels_s: Sequence[float], windows: Sequence[Window], wait_s: float) -> RateDecision:
    """Allowed, from each window's backlog in seconds after this permit; the headers
    describe the window with the fewest permits left."""
    best_w, best_left, best_level = windows[0], math.inf, 0.0
    for level, w in zip(levels_s, windows, strict=True):
        left = math.floor(w.burst - level / w.interval_s + EPS_S)
        if left < best_left:
            best_w, best_left, best_level = w, left, level
    return RateDecision(True, 0.0, best_w.limit, max(0, int(best_left)), best_level, wait_s)


def refused(levels_s: Sequence[float], windows: Sequence[Window], wait_s: float) -> RateDecision:
    """Refused, from each window's backlog in seconds (TAT - now, may be negative); the
    headers describe the window that needs the longest wait."""
    best_w, best_need, best_level = windows[0], -math.inf, 0.0
    for level, w in zip(levels_s, windows, strict=True):
        need = max(level, 0.0) + w.interval_s - w.tolerance_s
        if need > best_need:
            best_w, best_need, best_level = w, need, level
    return RateDecision(False, wait_s, best_w.limit, 0, max(0.0, best_level))
