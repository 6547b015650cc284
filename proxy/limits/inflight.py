"""Concurrency cap (bulkhead): calls beyond `max_inflight` are refused at once, never
queued, so a slow backend holds at most that many of the proxy's tasks and sockets."""

from __future__ import annotations


class Bulkhead:
    __slots__ = ("inflight", "max_inflight", "refused")

    def __init__(self, max_inflight: int) -> None:
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self.max_inflight = max_inflight
        self.inflight = 0
        self.refused = 0

    def try_enter(self) -> bool:
        """Take a slot; False means refuse with RATE_LIMITED (reason `concurrency`)."""
        if self.inflight >= self.max_inflight:
            self.refused += 1
            return False
        self.inflight += 1
        return True

    def leave(self) -> None:
        """Give the slot back; call exactly once per successful try_enter (in a finally)."""
        if self.inflight <= 0:
            raise RuntimeError("Bulkhead.leave() without a matching try_enter()")
        self.inflight -= 1
