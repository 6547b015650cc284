"""Approvals in a real Redis shared by two proxies: one replica holds the call, the other
accepts the decision; one-time use holds across replicas."""

from __future__ import annotations

import asyncio
import json

from tests.approval.conftest import TOP, approver_headers, decide
from tests.approval.test_guard_e2e import CALLER, route


async def post(px, body, **headers):
    async with px.session.post(
        px.url + "/billing/refund", json=body, headers={**CALLER, **headers}
    ) as r:
        raw = await r.read()
        return r.status, r.headers, json.loads(raw)


async def test_wait_on_one_replica_decided_on_another(
    upstream, redis_url, admin_token, write_rules, start_proxy
):
    up, url = upstream
    rules = write_rules([route(url)], redis={"url": redis_url}, **TOP)
    a, b = await start_proxy(rules), await start_proxy(rules)
    held = asyncio.create_task(post(a, {"order": 11}))
    async with asyncio.timeout(5):
        while True:
            async with b.session.get(
                b.admin + "/approvals?status=pending", headers=approver_headers()
            ) as r:
                mine = [x for x in (await r.json())["approvals"] if x["route"] == "billing"]
            if mine:
                break
            await asyncio.sleep(0.05)
    assert (await decide(b, mine[0]["id"]))[0] == 200  # decided on replica b
    status, _, _ = await held
    assert status == 200 and len(up.calls) == 1


async def test_defer_used_once_across_replicas(
    upstream, redis_url, admin_token, write_rules, start_proxy
):
    up, url = upstream
    rules = write_rules([route(url, mode="defer")], redis={"url": redis_url}, **TOP)
    a, b = await start_proxy(rules), await start_proxy(rules)
    status, _, body = await post(a, {"order": 12})
    assert status == 428
    approval_id = body["error"]["approval_id"]
    assert (await decide(b, approval_id))[0] == 200
    assert (await decide(a, approval_id))[0] == 409  # already decided, seen from a
    retry = {"X-CallWarden-Approval": approval_id}
    results = await asyncio.gather(post(a, {"order": 12}, **retry), post(b, {"order": 12}, **retry))
    assert sorted(s for s, _, _ in results) == [200, 403]
    assert len(up.calls) == 1
