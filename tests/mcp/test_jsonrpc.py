"""JSON-RPC parsing table, error rendering and 2026-07-28 routing-header checks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.mcp.jsonrpc import (
    check_routing_headers,
    decode_header_value,
    error_response,
    kind,
    parse_body,
)
from proxy.model.errors import ERROR_TABLE, ErrorCode, ProxyError

CALL = b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":1}}}'


@pytest.mark.parametrize(
    ("body", "kinds", "batch"),
    [
        (CALL, ["request"], False),
        (b'{"jsonrpc":"2.0","id":"abc","method":"ping"}', ["request"], False),
        (b'{"jsonrpc":"2.0","id":0,"method":"tools/list","params":{}}', ["request"], False),
        (b'{"jsonrpc":"2.0","method":"notifications/initialized"}', ["notification"], False),
        (b'{"jsonrpc":"2.0","id":1,"result":{}}', ["response"], False),
        (b'{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"x"}}', ["response"], False),
        (b'{"jsonrpc":"2.0","id":1,"method":"m","params":[1,2]}', ["request"], False),
        (
            b'[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"},'
            b'{"jsonrpc":"2.0","id":9,"result":1}]',
            ["request", "notification", "response"],
            True,
        ),
        (b' \n{"jsonrpc":"2.0","id":1,"method":"ping"}\n', ["request"], False),
        ('{"jsonrpc":"2.0","id":"é","method":"ping"}'.encode(), ["request"], False),
    ],
)
def test_parse_valid(body: bytes, kinds: list[str], batch: bool) -> None:
    messages, is_batch = parse_body(body)
    assert [kind(m) for m in messages] == kinds
    assert is_batch is batch
    assert [m.raw for m in messages] == (json.loads(body) if batch else [json.loads(body)])


def test_parse_fields() -> None:
    (msg,), _ = parse_body(CALL)
    assert (msg.id, msg.method, msg.params["name"]) == (3, "tools/call", "add")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "malformed JSON"),
        (b"{", "malformed JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[]", "empty batch"),
        (b"1", "must be an object"),
        (b"[1]", "batch[0]"),
        (b'{"id":1,"method":"ping"}', '"2.0"'),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', '"2.0"'),
        (b'{"jsonrpc":"2.0","id":1,"method":5}', "method"),
        (b'{"jsonrpc":"2.0","id":1,"method":""}', "method"),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', "request id"),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', "request id"),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', "request id"),
        (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', "request id"),
        (b'{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}', "params"),
        (b'{"jsonrpc":"2.0","id":1,"method":"m","result":1}', "both"),
        (b'{"jsonrpc":"2.0","id":1,"result":1,"error":{}}', "both"),
        (b'{"jsonrpc":"2.0","id":1}', "neither"),
        (b'{"jsonrpc":"2.0","result":1}', "response id"),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}',
            "duplicate",
        ),
        (b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"x":NaN}}', "NaN"),
        (b'[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0"}]', "batch[1]"),
        (b"[" * 100_000, "JSON"),
    ],
)
def test_parse_malformed(body: bytes, needle: str) -> None:
    with pytest.raises(ProxyError) as info:
        parse_body(body)
    assert info.value.code is ErrorCode.TOOL_BAD_REQUEST
    assert needle in info.value.message


def test_error_response_shape() -> None:
    err = ProxyError(ErrorCode.RATE_LIMITED, "slow down", retry_after_s=1.25)
    out = error_response(7, err, "tools", "abc123")
    assert out == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {
            "code": ERROR_TABLE[ErrorCode.RATE_LIMITED].jsonrpc_code,
            "message": "slow down",
            "data": {
                "error_code": "RATE_LIMITED",
                "retryable": True,
                "route": "tools",
                "trace_id": "abc123",
                "retry_after_ms": 1250,
            },
        },
    }
    json.dumps(out)  # serialisable


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_renders(code: ErrorCode) -> None:
    out = error_response("x", ProxyError(code, "m"), "r", "t")
    assert out["error"]["code"] == ERROR_TABLE[code].jsonrpc_code
    assert out["error"]["data"]["error_code"] == code.value
    assert "retry_after_ms" not in out["error"]["data"]


def _h(**pairs: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in pairs.items()}))


@pytest.mark.parametrize(
    ("headers", "body", "ok"),
    [
        ({}, CALL, True),
        ({"Mcp_Method": "tools/call", "Mcp_Name": "add"}, CALL, True),
        ({"mcp_method": "tools/call", "mcp_name": "add"}, CALL, True),
        ({"Mcp_Method": "tools/call", "Mcp_Name": "=?base64?YWRk?="}, CALL, True),
        ({"Mcp_Method": "tools/call", "Mcp_Name": "delete_user"}, CALL, False),
        ({"Mcp_Method": "tools/list"}, CALL, False),
        ({"Mcp_Method": "tools/call"}, CALL, False),
        ({"Mcp_Name": "delete_user"}, CALL, False),
        ({"Mcp_Method": "tools/call", "Mcp_Name": "=?base64?!!?="}, CALL, False),
        ({"Mcp_Method": "ping"}, b'{"jsonrpc":"2.0","id":1,"method":"ping"}', True),
        (
            {"Mcp_Method": "ping", "Mcp_Name": "x"},
            b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
            False,
        ),
        (
            {"Mcp_Method": "resources/read", "Mcp_Name": "file:///a"},
            b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}',
            True,
        ),
        (
            {"Mcp_Method": "resources/read", "Mcp_Name": "file:///b"},
            b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}',
            False,
        ),
        ({"Mcp_Method": "tools/call"}, b"[" + CALL + b"," + CALL + b"]", False),
        ({"Mcp_Method": "x"}, b'{"jsonrpc":"2.0","id":1,"result":{}}', False),
    ],
)
def test_routing_headers(headers: dict[str, str], body: bytes, ok: bool) -> None:
    messages, _ = parse_body(body)
    if ok:
        check_routing_headers(_h(**headers), messages)
    else:
        with pytest.raises(ProxyError) as info:
            check_routing_headers(_h(**headers), messages)
        assert info.value.code is ErrorCode.HEADER_MISMATCH
        assert info.value.http_status == 400 and info.value.spec.jsonrpc_code == -32020


V2026 = {"MCP_Protocol_Version": "2026-07-28"}
LIST = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
NOTE = b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}'


@pytest.mark.parametrize(
    ("headers", "body", "ok"),
    [
        # SEP-2243: from 2026-07-28 the standard headers are required, not just checked.
        (V2026, LIST, False),
        (V2026, NOTE, False),
        ({**V2026, "Mcp_Method": "tools/list"}, LIST, True),
        ({**V2026, "Mcp_Method": "tools/call"}, CALL, False),  # Mcp-Name missing
        ({**V2026, "Mcp_Method": "tools/call", "Mcp_Name": "add"}, CALL, True),
        ({**V2026, "Mcp_Method": " tools/call\t", "Mcp_Name": "  add  "}, CALL, True),
        ({**V2026, "Mcp_Method": "TOOLS/CALL", "Mcp_Name": "add"}, CALL, False),
        ({"MCP_Protocol_Version": "2099-01-01"}, LIST, False),  # later revisions too
        ({"MCP_Protocol_Version": "2025-11-25"}, LIST, True),
        ({"MCP_Protocol_Version": "garbage"}, LIST, True),  # the server's to refuse
        (V2026, b'{"jsonrpc":"2.0","id":1,"result":{}}', True),  # a response names nothing
        ({**V2026, "Mcp_Method": "tools/list"}, b"[" + LIST + b"," + LIST + b"]", False),
    ],
)
def test_standard_headers_required(headers: dict[str, str], body: bytes, ok: bool) -> None:
    test_routing_headers(headers, body, ok)


def test_header_value_decoding() -> None:
    assert decode_header_value("plain") == "plain"
    assert decode_header_value("=?base64?w6k=?=") == "é"
    assert decode_header_value("=?base64?w6k?=") is None  # not canonical
    assert decode_header_value("=?base64?//8=?=") is None  # not UTF-8


def test_docstring_documents_every_code() -> None:
    """The module docstring is the user-facing list of JSON-RPC codes: keep it true."""
    import re

    from proxy.mcp import jsonrpc

    documented = {
        name: int(code)
        for code, name in re.findall(r"(-3[12]\d{3}) ([A-Z_]+)", jsonrpc.__doc__ or "")
        if name in ErrorCode.__members__
    }
    assert documented == {c.value: s.jsonrpc_code for c, s in ERROR_TABLE.items()}


# MCP 2026-07-28 spec-reserved codes (mcp_types.jsonrpc) a CallWarden refusal must not reuse
# for another meaning: -32020 (HeaderMismatch) is used for exactly that one.
MCP_RESERVED = {-32002, -32020, -32021, -32022, -32042}


def test_codes_avoid_mcp_reserved_range() -> None:
    used = {c: s.jsonrpc_code for c, s in ERROR_TABLE.items()}
    assert {c for c, j in used.items() if j in MCP_RESERVED} == {ErrorCode.HEADER_MISMATCH}
    assert used[ErrorCode.HEADER_MISMATCH] == -32020
    assert all(
        j >= -32020 or j in (-32600, -32602, -32603) for j in used.values()
    )


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=8),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4),
    max_leaves=12,
)
_EDITS = st.sampled_from(
    ["", "dup", "nan", "inf", "escape", "bom", "lone", "-0", "1e400", "trail", "deep", "neg0f"]
)


_SWAPS = {  # edit -> (what, with what): once, where it first occurs
    "dup": ("{", '{"k":1,"k":2,'),
    "nan": ("null", "NaN"),
    "inf": ("null", "-Infinity"),
    "escape": ('"method"', '"\\u006dethod"'),
    "lone": ('"2.0"', '"2.0\\ud800"'),
    "-0": ("null", "-0"),
    "1e400": ("null", "1e400"),
    "neg0f": ("null", "-0.0"),
}


def _edit(text: str, edit: str) -> str:
    if edit in _SWAPS:
        old, new = _SWAPS[edit]
        return text.replace(old, new, 1)
    if edit == "bom":
        return "\ufeff" + text
    if edit == "trail":
        return text + ","
    if edit == "deep":
        return "[" * 3000 + "]" * 3000
    return text


@settings(max_examples=400, deadline=None)
@given(_JSON, st.sampled_from(["tools/call", None]), _EDITS, st.booleans())
def test_quick_parse_agrees_with_the_checking_decoder(
    value: object, method: str | None, edit: str, batch: bool
) -> None:
    """orjson first, the checking stdlib decoder when orjson cannot be trusted: the same
    messages, or the same refusal, as the checking decoder alone."""
    import proxy.mcp.jsonrpc as jr

    msg: dict[str, object] = {"jsonrpc": "2.0", "id": 1, "params": {"v": value, "w": None}}
    if method:
        msg["method"] = method
    else:
        msg["result"] = value
    text = _edit(json.dumps([msg, msg] if batch else msg), edit)
    body = text.encode("utf-8", "surrogatepass")

    def outcome() -> object:
        try:
            return parse_body(body)
        except ProxyError as exc:
            return exc.message

    quick = outcome()
    real_quick = jr._quick
    jr._quick = lambda _text: jr._SLOW
    try:
        slow = outcome()
    finally:
        jr._quick = real_quick
    assert repr(quick) == repr(slow)
