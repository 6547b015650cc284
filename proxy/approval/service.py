"""The process's approvals: one store (memory, or Redis when the rules name one), the
metrics, and the webhooks. Lives on Services, so it outlives every rules reload."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp

from proxy.approval.model import ApprovalRecord, Status, new_id
from proxy.approval.store import ApprovalStore, MemoryStore
from proxy.config.schema import ApprovalSpec, ApprovalWebhook

log = logging.getLogger("callwarden.approval")
NOTIFY_TIMEOUT_S = 5.0
MAX_PENDING = 1000
"""Pending approvals a process's store holds at most; beyond it new holds are refused
(RATE_LIMITED): an agent looping on a held call must not grow the store without bound."""
SWEEP_MIN_S = 0.05
SWEEP_MAX_S = 30.0
MAX_NOTIFY_TASKS = 256
"""Webhooks in flight at once; beyond it a notice is dropped (and counted), never queued
without bound."""


def slack_body(rec: ApprovalRecord) -> dict[str, Any]:
    """Slack-compatible incoming-webhook body (also read by Mattermost, Rocket.Chat)."""
    what = rec.tool or rec.method
    wait_s = max(0, round(rec.expires - rec.created))
    text = (
        f":raised_hand: Approval needed: `{what}` on route `{rec.route}`"
        f" (tenant {rec.tenant or '-'}, caller {rec.caller}).\n"
        f"Approval `{rec.id}`, roles {', '.join(rec.approvers)}, expires in {wait_s}s.\n"
        f"```{rec.arguments}```"
    )
    return {"text": text}


def json_body(rec: ApprovalRecord) -> dict[str, Any]:
    return {"event": "approval.pending", "approval": rec.to_json()}


class Approvals:
    def __init__(
        self,
        store: ApprovalStore,
        metrics: Any = None,
        secrets: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.secrets = secrets
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.closing = asyncio.Event()
        """Set when the process drains: held calls answer at once instead of being cut."""

    async def create(
        self,
        *,
        route: str,
        tool: str | None,
        method: str,
        caller: str,
        tenant: str | None,
        digest: str,
        arguments: str,
        spec: ApprovalSpec,
    ) -> ApprovalRecord | None:
        """A new pending approval, or the one already pending for this exact call (the
        same id again, no second notice); None when too many are pending."""
        records = await self.expire_due()
        now = self.clock()
        pending = [r for r in records if r.status is Status.PENDING]
        for held in pending:
            if held.digest == digest and held.route == route:
                return held
        if len(pending) >= MAX_PENDING:
            return None
        rec = ApprovalRecord(
            id=new_id(),
            route=route,
            tool=tool,
            method=method,
            caller=caller,
            tenant=tenant,
            digest=digest,
            arguments=arguments,
            approvers=tuple(spec.approvers),
            created=now,
            expires=now + spec.timeout_s,
            remember_s=spec.remember_s,
        )
        await self.store.put(rec)
        await self.refresh_gauge()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep())
        for hook in spec.notify:
            self._notify(hook, rec)
        return rec

    async def decide(
        self, approval_id: str, status: Status, by: str | None, comment: str | None
    ) -> ApprovalRecord | None:
        now = self.clock()
        rec = await self.store.decide(approval_id, status, by, comment, now)
        if rec is not None:
            if self.metrics is not None:
                self.metrics.approval_decisions.labels(rec.route, str(status)).inc()
                self.metrics.approval_decision_seconds.labels(rec.route).observe(now - rec.created)
            log.info(
                "approval %s %s by %s on route %s after %.1fs%s",
                rec.id,
                status,
                by or "-",
                rec.route,
                now - rec.created,
                f" ({comment})" if comment else "",
            )
            await self.refresh_gauge()
        return rec

    async def hold(self, rec: ApprovalRecord, limit: float) -> ApprovalRecord | None:
        """Wait-mode: the record once decided, or as it is after `limit`; None when the
        process started draining first."""
        if self.closing.is_set():
            return None
        waiting = asyncio.ensure_future(self.store.wait(rec.id, limit))
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            await asyncio.wait({waiting, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not waiting.done():
                waiting.cancel()
        if not waiting.done() or waiting.cancelled():
            return None
        return waiting.result() or rec

    async def expire_due(self) -> list[ApprovalRecord]:
        """Every record, pending ones past their expiry marked expired first."""
        now = self.clock()
        out = []
        for rec in await self.store.all():
            if rec.status is Status.PENDING and now >= rec.expires:
                rec = await self.decide(rec.id, Status.EXPIRED, None, None) or rec
            out.append(rec)
        return out

    async def refresh_gauge(self) -> None:
        if self.metrics is None:
            return
        counts: dict[str, int] = {}
        for rec in await self.store.all():
            counts.setdefault(rec.route, 0)
            if rec.status is Status.PENDING:
                counts[rec.route] += 1
        for route, n in counts.items():
            self.metrics.approvals_pending.labels(route).set(n)

    async def _sweep(self) -> None:
        """Expire pending approvals when their time is up, even if nobody looks (the
        expired counter and the pending gauge stay true); ends when none is pending."""
        while True:
            try:
                records = await self.expire_due()
            except Exception as exc:  # a store hiccup: try again later, never crash the loop
                log.warning("approval expiry sweep failed: %s", exc.__class__.__name__)
                records = None
            if records is not None:
                due = [r.expires for r in records if r.status is Status.PENDING]
                if not due:
                    return
                wait = min(due) - self.clock()
            else:
                wait = SWEEP_MAX_S
            await asyncio.sleep(min(max(wait, SWEEP_MIN_S), SWEEP_MAX_S))

    def _notify(self, hook: ApprovalWebhook, rec: ApprovalRecord) -> None:
        if len(self._tasks) >= MAX_NOTIFY_TASKS:
            self._failed(rec, "too many notices in flight")
            return
        task = asyncio.create_task(self._post(hook, rec))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, hook: ApprovalWebhook, rec: ApprovalRecord) -> None:
        body = slack_body(rec) if hook.format == "slack" else json_body(rec)
        try:
            url = await self.secrets.resolve(hook.url) if self.secrets else hook.url
            timeout = aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT_S)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, json=body, allow_redirects=False) as resp,
            ):
                if resp.status >= 300:
                    self._failed(rec, f"HTTP {resp.status}")
        except Exception as exc:  # SECURITY: the URL may hold a secret: never log it
            self._failed(rec, exc.__class__.__name__)

    def _failed(self, rec: ApprovalRecord, why: str) -> None:
        log.warning("approval %s: webhook notice failed (%s)", rec.id, why)
        if self.metrics is not None:
            self.metrics.approval_notify_failures.labels(rec.route).inc()

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.store.aclose()


def approvals_of(services: Any, rules: Any = None) -> Approvals:
    """The process's Approvals, made on first use and kept across reloads on Services:
    in Redis when the rules name one (every replica shares them), else in memory. The
    store chosen at first use stays until a restart."""
    held = services.extra.get("approvals")
    if held is None:
        store: ApprovalStore
        if rules is not None and rules.redis is not None:
            from proxy.approval.redis_store import redis_store

            store = redis_store(rules.redis)
        else:
            store = MemoryStore()
        held = services.extra["approvals"] = Approvals(store, services.metrics, services.secrets)
    return held  # type: ignore[no-any-return]


def with_used(rec: ApprovalRecord) -> ApprovalRecord:
    return replace(rec, used=True)
