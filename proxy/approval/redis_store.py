"""Approvals in Redis, shared by every replica: any replica can show, decide and let
through an approval another one created. Decisions and one-time use are atomic (WATCH /
MULTI on the record's key), so two replicas cannot both decide or both use one approval.

Keys (prefix `callwarden:approval:`): `rec:{id}` the record as JSON (expires a day after
its decision window), `ids` a sorted set by creation for listing, `digest:{sha}` the id of
an approved digest while remember_s lasts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from proxy.approval.decide import remembered
from proxy.approval.model import ApprovalRecord, Status
from proxy.approval.store import MAX_RECORDS

PREFIX = "callwarden:approval:"
KEEP_S = 86400
"""Records stay this long after they could last be decided or remembered."""
POLL_S = 0.1
"""A held call looks for its decision this often (bounded: one GET per interval)."""


class RedisStore:
    def __init__(self, url: str, timeout_s: float = 1.0) -> None:
        self._client = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    @staticmethod
    def _key(approval_id: str) -> str:
        return f"{PREFIX}rec:{approval_id}"

    @staticmethod
    def _ttl(rec: ApprovalRecord, now: float) -> int:
        return max(1, int(max(rec.expires, now + rec.remember_s) - now) + KEEP_S)

    async def put(self, rec: ApprovalRecord) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._key(rec.id), json.dumps(rec.to_json()), ex=self._ttl(rec, rec.created))
        pipe.zadd(PREFIX + "ids", {rec.id: rec.created})
        pipe.zremrangebyrank(PREFIX + "ids", 0, -MAX_RECORDS - 1)
        await pipe.execute()

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        raw = await self._client.get(self._key(approval_id))
        return ApprovalRecord.from_json(json.loads(raw)) if raw else None

    async def _update(
        self, approval_id: str, change: Callable[[ApprovalRecord], ApprovalRecord | None]
    ) -> ApprovalRecord | None:
        """Read, change and write one record atomically (retried when another replica
        wrote it in between); None when `change` refuses."""
        key = self._key(approval_id)
        for _ in range(16):
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if not raw:
                        return None
                    new = change(ApprovalRecord.from_json(json.loads(raw)))
                    if new is None:
                        return None
                    pipe.multi()
                    pipe.set(key, json.dumps(new.to_json()), keepttl=True)
                    if new.status is Status.APPROVED and new.remember_s > 0 and not new.used:
                        pipe.set(
                            f"{PREFIX}digest:{new.digest}", new.id, ex=max(1, int(new.remember_s))
                        )
                    await pipe.execute()
                    return new
                except WatchError:
                    continue
        raise RuntimeError("approval record kept changing under this update")

    async def decide(
        self, approval_id: str, status: Status, by: str | None, comment: str | None, now: float
    ) -> ApprovalRecord | None:
        def change(rec: ApprovalRecord) -> ApprovalRecord | None:
            if rec.status is not Status.PENDING:
                return None
            return replace(rec, status=status, decided_by=by, decided_at=now, comment=comment)

        return await self._update(approval_id, change)

    async def consume(self, approval_id: str, now: float) -> bool:
        def change(rec: ApprovalRecord) -> ApprovalRecord | None:
            if rec.status is not Status.APPROVED or (rec.used and not remembered(rec, now)):
                return None
            return replace(rec, used=True)

        return await self._update(approval_id, change) is not None

    async def remembered(self, digest: str, now: float) -> ApprovalRecord | None:
        approval_id = await self._client.get(f"{PREFIX}digest:{digest}")
        rec = await self.get(approval_id.decode()) if approval_id else None
        return rec if rec is not None and rec.digest == digest and remembered(rec, now) else None

    async def all(self) -> list[ApprovalRecord]:
        ids = await self._client.zrange(PREFIX + "ids", 0, -1)
        if not ids:
            return []
        raws = await self._client.mget([self._key(i.decode()) for i in ids])
        return [ApprovalRecord.from_json(json.loads(r)) for r in raws if r]

    async def wait(self, approval_id: str, timeout: float) -> ApprovalRecord | None:
        loop = asyncio.get_running_loop()
        end = loop.time() + max(0.0, timeout)
        while True:
            rec = await self.get(approval_id)
            left = end - loop.time()
            if rec is None or rec.status is not Status.PENDING or left <= 0:
                return rec
            await asyncio.sleep(min(POLL_S, left))

    async def aclose(self) -> None:
        await self._client.aclose()


def redis_store(spec: Any) -> RedisStore:
    return RedisStore(spec.url, max(1.0, spec.timeout_ms / 1000))
