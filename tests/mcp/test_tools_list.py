"""The tools/list filter remembers its answer per (roles, text after the id): whatever
the order of calls, every answer equals the one worked out from scratch."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config.schema import McpSpec
from proxy.mcp.tools_list import ToolsListFilter, runtime_for

SPEC = McpSpec.model_validate(
    {
        "default": "deny",
        "tools": {
            "get_weather": {"roles": ["*"]},
            "run_sql": {"roles": ["analyst"]},
            "delete_user": {"roles": ["admin"]},
        },
    }
)
TOOLS = [
    {"name": "get_weather", "inputSchema": {"type": "object", "properties": {"id": {}}}},
    {"name": "run_sql", "description": "SQL: read only"},
    {"name": "delete_user", "annotations": {"destructiveHint": True}},
]


def _text(msg_id: object, shape: str) -> str:
    result = {"tools": TOOLS, "nextCursor": "p2"}
    head = f'{{"jsonrpc":"2.0","id":{json.dumps(msg_id)},'
    if shape == "plain":
        return head + f'"result":{json.dumps(result, separators=(",", ":"))}}}'
    if shape == "spaced":
        return json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result})
    if shape == "repeated":  # every tool first, then only the harmless one
        first = json.dumps(TOOLS, separators=(",", ":"))
        return head + f'"result":{{"tools":{first},"tools":[{json.dumps(TOOLS[0])}]}}}}'
    if shape == "id-twice":  # the id repeated at the end: parsers disagree on it
        return head + f'"result":{json.dumps(result)},"id":"other"}}'
    return head + '"result":{"tools":[]}}'  # "empty"


def _sse(text: str) -> bytes:
    return f"event: message\r\ndata: {text}\r\n\r\n".encode()


CALLS = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 5), st.sampled_from(["a", "b-1", "x:y"])),
        st.sampled_from([frozenset(), frozenset({"analyst"}), frozenset({"admin", "x"})]),
        st.sampled_from(["plain", "spaced", "repeated", "id-twice", "empty"]),
        st.booleans(),  # the answer's id is the request's (the filter reads every id)
        st.booleans(),  # SSE or a JSON body
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(CALLS)
def test_remembered_answers_equal_fresh_ones(calls: list[tuple]) -> None:
    shared = runtime_for(SPEC)
    for msg_id, roles, shape, asked, sse in calls:
        text = _text(msg_id if asked else "not-this", shape)
        fresh = ToolsListFilter(runtime_for(SPEC), roles)
        memo = ToolsListFilter(shared, roles)
        if sse:
            assert memo.event(_sse(text)) == fresh.event(_sse(text))
        else:
            data = text.encode()
            assert memo.body(data, "application/json") == fresh.body(data, "application/json")


def test_a_repeat_is_remembered_and_hides_what_it_must() -> None:
    rt = runtime_for(SPEC)
    for i in range(3):
        out = ToolsListFilter(rt, frozenset()).event(_sse(_text(i, "plain")))
        doc = json.loads(out.decode().split("data: ", 1)[1])
        assert doc["id"] == i and [t["name"] for t in doc["result"]["tools"]] == ["get_weather"]
        assert doc["result"]["nextCursor"] == "p2"
    assert len(rt.lists) == 1  # one text, three ids: worked out once
    ToolsListFilter(rt, frozenset()).event(_sse(_text(9, "repeated")))
    ToolsListFilter(rt, frozenset()).event(_sse(_text(9, "id-twice")))
    assert len(rt.lists) == 1  # texts parsers read differently are never remembered
