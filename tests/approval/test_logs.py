"""The decision log records approver, comment and time to decision; the access log the
approval id."""

from __future__ import annotations

import asyncio
import json
import logging

from tests.approval.conftest import TOP, decide, pending_id
from tests.approval.test_guard_e2e import route, send


async def test_decision_and_access_logs(
    upstream, admin_token, write_rules, start_proxy, tmp_path, caplog
):
    _, url = upstream
    log = tmp_path / "decisions.jsonl"
    obs = {"decision_log": {"path": str(log)}}
    caplog.set_level(logging.INFO, logger="callwarden.access")  # before: decided at start
    px = await start_proxy(write_rules([route(url)], observability=obs, **TOP))
    call = asyncio.create_task(send(px, "/billing/refund", {"order": 7}))
    approval_id = await pending_id(px)
    assert (await decide(px, approval_id, comment="INC-981", name="dana"))[0] == 200
    assert (await call)[0] == 200
    await asyncio.sleep(0.05)
    await asyncio.to_thread(px.state.decision_log.flush)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    held = [x for x in lines if x.get("approval")]
    assert len(held) == 1
    a = held[0]["approval"]
    assert a["id"] == approval_id and a["status"] == "approved"
    assert a["approver"] == "dana" and a["comment"] == "INC-981" and a["decision_s"] >= 0
    access = [json.loads(r.getMessage()) for r in caplog.records if r.name == "callwarden.access"]
    assert any(x.get("approval") == approval_id for x in access)
