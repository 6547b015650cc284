"""One deadline per call: min(route timeout, caller's remaining budget).

Which of the two binds decides the error code on expiry: the route's own timeout is
TOOL_TIMEOUT, the orchestrator's budget is the phase code (PLAN_/EXECUTE_/COMPOSE_TIMEOUT).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from proxy.model.errors import PHASE_TIMEOUTS, ErrorCode, ProxyError

PHASES = frozenset(PHASE_TIMEOUTS)


@dataclass(frozen=True, slots=True)
class Deadline:
    expires_at: float
    """time.monotonic() value at which the call must be over."""
    budget_bound: bool
    """True when the caller's budget, not the route timeout, is the binding limit."""
    phase: str | None = None
    budget_ms: int | None = None
    """Budget on arrival, as the caller sent it (for logs and metrics)."""

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()

    def remaining_ms(self) -> int:
        return max(0, int(self.remaining() * 1000))

    @property
    def timeout_code(self) -> ErrorCode:
        if self.budget_bound:
            return PHASE_TIMEOUTS.get(self.phase or "execute", ErrorCode.EXECUTE_TIMEOUT)
        return ErrorCode.TOOL_TIMEOUT

    def expired_error(self) -> ProxyError:
        if self.budget_bound:
            msg = f"request budget exhausted in phase {self.phase or 'execute'}"
        else:
            msg = "route timeout exceeded"
        return ProxyError(self.timeout_code, msg)

    def tightened(self, timeout_s: float, now: float | None = None) -> Deadline:
        """A deadline no later than this one and `timeout_s` from now (per-tool timeouts)."""
        now = time.monotonic() if now is None else now
        if now + timeout_s < self.expires_at:
            return Deadline(now + timeout_s, False, self.phase, self.budget_ms)
        return self


def parse_budget(raw: str | None) -> int | None:
    if raw is None:
        return None
    raw = raw.strip()
    # Digits only: no signs, floats or whitespace tricks; 10 digits is ~115 days.
    if not raw.isdigit() or not raw.isascii() or len(raw) > 10:
        raise ProxyError(ErrorCode.TOOL_BAD_REQUEST, "malformed request budget header")
    return int(raw)


def parse_phase(raw: str | None) -> str | None:
    if raw is None:
        return None
    phase = raw.strip().lower()
    if phase not in PHASES:
        raise ProxyError(
            ErrorCode.TOOL_BAD_REQUEST, "orchestration phase must be plan, execute or compose"
        )
    return phase


def make_deadline(
    now: float, route_timeout_s: float, budget_raw: str | None, phase_raw: str | None
) -> Deadline:
    """Raises ProxyError for malformed headers and for a budget already spent."""
    budget_ms = parse_budget(budget_raw)
    phase = parse_phase(phase_raw)
    if budget_ms is None or budget_ms / 1000 >= route_timeout_s:
        return Deadline(now + route_timeout_s, False, phase, budget_ms)
    deadline = Deadline(now + budget_ms / 1000, True, phase, budget_ms)
    if budget_ms <= 0:
        raise deadline.expired_error()
    return deadline
