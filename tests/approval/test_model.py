"""Canonical digests and masked display."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.approval.model import call_arguments, call_digest, masked_arguments
from proxy.model.call import Caller, HttpCall, JsonRpcMessage, McpCall, Request, SqlCall


def http(body: dict, tenant: str = "acme", path: str = "/refund") -> HttpCall:
    caller = Caller(tenant, frozenset({"agent"}), "t")
    req = Request("POST", path, "", headers=CIMultiDictProxy(CIMultiDict()))
    return HttpCall("billing", "http", caller, req, json=body)


def digest(call):
    return call_digest(call, call_arguments(call))


def test_digest_is_canonical_and_binds_every_part():
    assert digest(http({"a": 1, "b": 2})) == digest(http({"b": 2, "a": 1}))
    base = digest(http({"a": 1}))
    assert digest(http({"a": 2})) != base
    assert digest(http({"a": 1}, tenant="globex")) != base
    assert digest(http({"a": 1}, path="/refund/all")) != base


def test_sql_digest_uses_the_judged_text():
    caller = Caller("acme", frozenset(), "t")
    call = SqlCall("db", "sql", caller, Request("POST", "/q"), sql="delete from t")
    judged = call_digest(call, call_arguments(call, "delete from t where id = 1"))
    assert judged != digest(call)


def test_mcp_digest_covers_params_not_ids():
    caller = Caller("acme", frozenset(), "t")

    def mcp(rid: int, uid: int) -> McpCall:
        params = {"name": "delete_user", "arguments": {"user_id": uid}}
        msg = JsonRpcMessage(rid, "tools/call", params, {})
        return McpCall("tools", "mcp", caller, Request("POST", "/"), messages=(msg,))

    assert digest(mcp(1, 7)) == digest(mcp(2, 7))
    assert digest(mcp(1, 7)) != digest(mcp(1, 8))


def test_masked_arguments_hide_secrets():
    text = masked_arguments({"password": "hunter2", "nested": {"api_key": "k"}, "n": 1})
    assert "hunter2" not in text and '"k"' not in text and '"n": 1' in text
    assert len(masked_arguments({"x": "y" * 10000})) < 5000


def test_caller_identity_prefers_the_verified_subject():
    from types import MappingProxyType

    from proxy.approval.model import caller_identity

    headers = Caller("acme", frozenset({"agent"}), "t")
    token = Caller("acme", frozenset({"agent"}), "t", claims=MappingProxyType({"sub": "bot-7"}))
    req = Request("POST", "/")
    assert caller_identity(HttpCall("r", "http", headers, req)) == "acme/agent"
    assert caller_identity(HttpCall("r", "http", token, req)) == "bot-7"
