"""Where approvals live: process memory by default; Redis (redis_store.py) when the
rules name one, so every replica sees and can decide the same approvals. The store lives
on the process's Services, not the compiled rules: pending approvals survive a reload."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Protocol

from proxy.approval.decide import remembered
from proxy.approval.model import ApprovalRecord, Status

MAX_RECORDS = 2000
"""Decided records kept for the page's recent decisions and for remember_s; the oldest
decided ones go first (pending ones are never dropped for room)."""


class ApprovalStore(Protocol):
    async def put(self, rec: ApprovalRecord) -> None: ...
    async def get(self, approval_id: str) -> ApprovalRecord | None: ...
    async def decide(
        self, approval_id: str, status: Status, by: str | None, comment: str | None, now: float
    ) -> ApprovalRecord | None:
        """Pending -> status, atomically; None when it was not pending."""
        ...

    async def consume(self, approval_id: str, now: float) -> bool:
        """Approved and unused (or remembered) -> used; False otherwise, atomically."""
        ...

    async def remembered(self, digest: str, now: float) -> ApprovalRecord | None: ...
    async def all(self) -> list[ApprovalRecord]: ...
    async def wait(self, approval_id: str, timeout: float) -> ApprovalRecord | None:
        """The record once it is no longer pending, or as it is after `timeout`."""
        ...

    async def aclose(self) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, ApprovalRecord] = {}
        self._digests: dict[str, str] = {}
        self._changed: dict[str, asyncio.Event] = {}

    async def put(self, rec: ApprovalRecord) -> None:
        self._records[rec.id] = rec
        self._prune()

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        return self._records.get(approval_id)

    async def decide(
        self, approval_id: str, status: Status, by: str | None, comment: str | None, now: float
    ) -> ApprovalRecord | None:
        rec = self._records.get(approval_id)
        if rec is None or rec.status is not Status.PENDING:
            return None
        rec = replace(rec, status=status, decided_by=by, decided_at=now, comment=comment)
        self._records[approval_id] = rec
        if status is Status.APPROVED and rec.remember_s > 0:
            self._digests[rec.digest] = rec.id
        event = self._changed.pop(approval_id, None)
        if event is not None:
            event.set()
        return rec

    async def consume(self, approval_id: str, now: float) -> bool:
        rec = self._records.get(approval_id)
        if rec is None or rec.status is not Status.APPROVED:
            return False
        if rec.used and not remembered(rec, now):
            return False
        self._records[approval_id] = replace(rec, used=True)
        return True

    async def remembered(self, digest: str, now: float) -> ApprovalRecord | None:
        approval_id = self._digests.get(digest)
        rec = self._records.get(approval_id) if approval_id else None
        return rec if rec is not None and remembered(rec, now) else None

    async def all(self) -> list[ApprovalRecord]:
        return list(self._records.values())

    async def wait(self, approval_id: str, timeout: float) -> ApprovalRecord | None:
        rec = self._records.get(approval_id)
        if rec is None or rec.status is not Status.PENDING:
            return rec
        event = self._changed.setdefault(approval_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(0.0, timeout))
        return self._records.get(approval_id)

    async def aclose(self) -> None:
        return None

    def _prune(self) -> None:
        if len(self._records) <= MAX_RECORDS:
            return
        decided = sorted(
            (r for r in self._records.values() if r.status is not Status.PENDING),
            key=lambda r: r.decided_at or r.created,
        )
        for rec in decided[: len(self._records) - MAX_RECORDS]:
            del self._records[rec.id]
            if self._digests.get(rec.digest) == rec.id:
                del self._digests[rec.digest]
