"""The approval guard end to end: a real upstream behind the proxy, approvers on the
admin port, a local webhook receiver."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.approval.conftest import TOP, approver_headers, decide, pending_id


def route(url: str, hooks_url: str | None = None, name: str = "billing", **approval: Any) -> dict:
    spec: dict[str, Any] = {"approvers": ["on-call"], "timeout_s": 5, **approval}
    if hooks_url:
        spec["notify"] = [
            {"url": hooks_url + "/json"},
            {"url": hooks_url + "/slack", "format": "slack"},
        ]
    return {
        "name": name,
        "match": {"path_prefix": f"/{name}"},
        "upstream": url,
        "approval": spec,
    }


CALLER = {"X-Caller-Role": "agent", "X-Tenant-ID": "acme"}


async def send(px: Any, path: str, body: Any, **headers: str) -> tuple[int, Any, Any]:
    async with px.session.post(px.url + path, json=body, headers={**CALLER, **headers}) as r:
        raw = await r.read()
        return r.status, r.headers, json.loads(raw) if raw else None


async def test_wait_approved_goes_through_once_with_webhooks(
    upstream, hooks, admin_token, write_rules, start_proxy
):
    up, url = upstream
    h, hurl = hooks
    px = await start_proxy(write_rules([route(url, hurl)], **TOP))
    call = asyncio.create_task(send(px, "/billing/refund", {"order": 7, "amount": 120}))
    approval_id = await pending_id(px)
    kinds = {(await h.next())[0], (await h.next())[0]}
    assert kinds == {"json", "slack"}
    assert not up.calls  # held: the upstream has not seen it
    status, rec = await decide(px, approval_id, comment="ok, ticket 42")
    assert status == 200 and rec["status"] == "approved" and rec["decided_by"] == "alice"
    status, _, body = await call
    assert status == 200
    assert body["path"] == "/refund" and json.loads(body["body"]) == {"order": 7, "amount": 120}
    assert len(up.calls) == 1
    assert px.metric("callwarden_approval_decisions_total", route="billing", result="approved") == 1
    assert px.metric("callwarden_approvals_pending", route="billing") == 0


async def test_webhook_bodies(upstream, hooks, admin_token, write_rules, start_proxy):
    _, url = upstream
    h, hurl = hooks
    # development: the credentials guard warns instead of refusing a plaintext password
    rules = write_rules([route(url, hurl, mode="defer")], environment="development", **TOP)
    px = await start_proxy(rules)
    status, _, body = await send(px, "/billing/x", {"password": "hunter2-secret", "n": 1})
    assert status == 428
    got = dict([await h.next(), await h.next()])
    approval_id = body["error"]["approval_id"]
    assert got["json"]["approval"]["id"] == approval_id
    assert "hunter2" not in json.dumps(got)  # masked for display
    assert approval_id in got["slack"]["text"] and "billing" in got["slack"]["text"]


async def test_the_same_call_again_gets_the_same_pending_approval(
    upstream, hooks, admin_token, write_rules, start_proxy
):
    _, url = upstream
    h, hurl = hooks
    px = await start_proxy(write_rules([route(url, hurl, mode="defer")], **TOP))
    ids = [(await send(px, "/billing/r", {"order": 1}))[2]["error"]["approval_id"] for _ in "ab"]
    assert ids[0] == ids[1]
    other = (await send(px, "/billing/r", {"order": 2}))[2]["error"]["approval_id"]
    assert other != ids[0]
    await asyncio.sleep(0.2)
    assert len(h.bodies) == 4  # two notices (json, slack) per approval, not per call


async def test_wait_denied_is_refused(upstream, admin_token, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(write_rules([route(url)], **TOP))
    call = asyncio.create_task(send(px, "/billing/refund", {"order": 7}))
    approval_id = await pending_id(px)
    assert (await decide(px, approval_id, "deny", comment="no"))[0] == 200
    status, headers, body = await call
    assert status == 403 and body["error"]["code"] == "APPROVAL_DENIED"
    assert headers["X-CallWarden-Approval"] == approval_id
    assert not up.calls


async def test_wait_expires_undecided(upstream, admin_token, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(write_rules([route(url, timeout_s=0.3)], **TOP))
    status, _, body = await send(px, "/billing/refund", {"order": 7})
    assert status == 403 and body["error"]["code"] == "APPROVAL_EXPIRED"
    assert not up.calls
    assert px.metric("callwarden_approval_decisions_total", route="billing", result="expired") == 1


async def test_budget_shorter_than_approval_timeout(
    upstream, admin_token, write_rules, start_proxy
):
    up, url = upstream
    px = await start_proxy(write_rules([route(url, timeout_s=30)], **TOP))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    status, headers, body = await send(
        px, "/billing/refund", {"order": 7}, **{"X-Request-Budget-Ms": "300"}
    )
    assert loop.time() - t0 < 3
    assert status == 504 and body["error"]["code"] == "EXECUTE_TIMEOUT"
    approval_id = headers["X-CallWarden-Approval"]
    # Still pending: approved later, a retry naming it goes through, once.
    assert (await decide(px, approval_id))[0] == 200
    status, _, _ = await send(
        px, "/billing/refund", {"order": 7}, **{"X-CallWarden-Approval": approval_id}
    )
    assert status == 200 and len(up.calls) == 1
    assert "X-CallWarden-Approval" not in up.calls[0]["headers"]


async def test_defer_changed_argument_refused(upstream, admin_token, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(write_rules([route(url, mode="defer")], **TOP))
    status, headers, body = await send(px, "/billing/refund", {"order": 7, "amount": 1})
    assert status == 428
    err = body["error"]
    assert err["code"] == "APPROVAL_PENDING" and err["retryable"] is True
    approval_id = err["approval_id"]
    assert headers["X-CallWarden-Approval"] == approval_id
    retry = {"X-CallWarden-Approval": approval_id}
    status, _, body = await send(px, "/billing/refund", {"order": 7, "amount": 1}, **retry)
    assert status == 428  # not decided yet
    assert (await decide(px, approval_id))[0] == 200
    status, _, body = await send(px, "/billing/refund", {"order": 7, "amount": 9999}, **retry)
    assert status == 403 and body["error"]["code"] == "APPROVAL_MISMATCH"
    assert not up.calls
    status, _, _ = await send(px, "/billing/refund", {"order": 7, "amount": 1}, **retry)
    assert status == 200 and len(up.calls) == 1
    # once only
    status, _, body = await send(px, "/billing/refund", {"order": 7, "amount": 1}, **retry)
    assert status == 403 and body["error"]["code"] == "APPROVAL_MISMATCH"
    assert len(up.calls) == 1


async def test_remember_s_reuses_an_approved_digest(
    upstream, admin_token, write_rules, start_proxy
):
    up, url = upstream
    px = await start_proxy(write_rules([route(url, mode="defer", remember_s=30)], **TOP))
    _, _, body = await send(px, "/billing/refund", {"order": 7})
    approval_id = body["error"]["approval_id"]
    assert (await decide(px, approval_id))[0] == 200
    for _ in range(2):  # the same call, no header: remembered
        status, _, _ = await send(px, "/billing/refund", {"order": 7})
        assert status == 200
    status, _, body = await send(px, "/billing/refund", {"order": 8})  # another call
    assert status == 428
    assert len(up.calls) == 2


async def test_approval_id_replayed_on_another_route(
    upstream, admin_token, write_rules, start_proxy
):
    up, url = upstream
    routes = [route(url, mode="defer"), route(url, name="payroll", mode="defer")]
    px = await start_proxy(write_rules(routes, **TOP))
    _, _, body = await send(px, "/billing/refund", {"order": 7})
    approval_id = body["error"]["approval_id"]
    assert (await decide(px, approval_id))[0] == 200
    retry = {"X-CallWarden-Approval": approval_id}
    status, headers, body = await send(px, "/payroll/refund", {"order": 7}, **retry)
    assert status == 403 and body["error"]["code"] == "APPROVAL_MISMATCH"
    assert "another route" in body["error"]["message"]
    assert "X-CallWarden-Approval" not in headers
    assert not up.calls


async def test_approver_rules(upstream, admin_token, write_rules, start_proxy):
    _, url = upstream
    px = await start_proxy(write_rules([route(url, mode="defer")], **TOP))
    _, _, body = await send(px, "/billing/refund", {"order": 7})
    approval_id = body["error"]["approval_id"]
    # wrong role, wrong token, own call (the caller's identity is tenant/roles here)
    assert (await decide(px, approval_id, roles="dev"))[0] == 403
    assert (await decide(px, approval_id, token="nope"))[0] == 401
    assert (await decide(px, approval_id, name="acme/agent", roles="on-call,agent"))[0] == 403
    async with px.session.get(px.admin + "/approvals/" + approval_id) as r:
        assert r.status == 401  # no token
    async with px.session.get(
        px.admin + "/approvals/" + approval_id, headers=approver_headers()
    ) as r:
        assert (await r.json())["status"] == "pending"
    # the proxy port serves none of it
    async with px.session.get(px.url + "/approvals", headers=approver_headers()) as r:
        assert r.status == 403 and r.headers["X-CallWarden-Error-Code"] == "POLICY_DENY"


async def test_no_admin_token_nobody_decides(upstream, write_rules, start_proxy):
    _, url = upstream
    px = await start_proxy(write_rules([route(url, mode="defer")]))
    _, _, body = await send(px, "/billing/refund", {"order": 7})
    status, doc = await decide(px, body["error"]["approval_id"])
    assert status == 403 and "admin_token" in doc["error"]


async def test_pending_survives_reload(upstream, admin_token, write_rules, start_proxy):
    from proxy.config.load import load_rules

    _, url = upstream
    path = write_rules([route(url, mode="defer")], **TOP)
    px = await start_proxy(path)
    _, _, body = await send(px, "/billing/refund", {"order": 7})
    approval_id = body["error"]["approval_id"]
    path2 = write_rules([route(url, mode="defer", timeout_s=60)], name="r2.yaml", **TOP)
    px.state.swap(load_rules(path2))
    assert (await decide(px, approval_id))[0] == 200
    retry = {"X-CallWarden-Approval": approval_id}
    status, _, _ = await send(px, "/billing/refund", {"order": 7}, **retry)
    assert status == 200


async def test_audit_mode_does_not_hold(upstream, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(write_rules([{**route(url), "guard_modes": {"approval": "audit"}}]))
    status, _, _ = await send(px, "/billing/refund", {"order": 7})
    assert status == 200 and len(up.calls) == 1
    value = px.metric(
        "callwarden_audit_would_deny_total",
        route="billing",
        guard="approval",
        error_code="APPROVAL_PENDING",
    )
    assert value == 1


async def test_undecided_defer_approval_expires_on_its_own(
    upstream, admin_token, write_rules, start_proxy
):
    _, url = upstream
    px = await start_proxy(write_rules([route(url, mode="defer", timeout_s=0.3)], **TOP))
    assert (await send(px, "/billing/refund", {"order": 7}))[0] == 428
    assert px.metric("callwarden_approvals_pending", route="billing") == 1
    labels = {"route": "billing", "result": "expired"}
    assert await px.metric_eventually("callwarden_approval_decisions_total", 1, **labels) == 1
    assert px.metric("callwarden_approvals_pending", route="billing") == 0


async def test_drain_answers_held_calls(upstream, admin_token, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(write_rules([route(url, timeout_s=30)], **TOP))
    held = asyncio.create_task(send(px, "/billing/refund", {"order": 7}))
    approval_id = await pending_id(px)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stopping = asyncio.create_task(px.server.stop(drain_s=10))
    status, headers, body = await held
    assert loop.time() - t0 < 5  # answered at once, not cut after the drain
    assert status == 502 and body["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert headers["X-CallWarden-Approval"] == approval_id
    await stopping
    assert not up.calls
