"""Tool integrity end to end, with the official SDK on both sides of the proxy: pin with
`callwarden pin`, restart the server with a poisoned description or a widened schema and
an extra tool, then drive the SDK client through the proxy in block and warn mode."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import yaml
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from proxy.cli import main
from proxy.integrity.pins import load_pins, tool_digest
from proxy.model.errors import ERROR_TABLE, ErrorCode
from tests.integrity.tool_server import (
    ADD,
    EXTRA,
    NOTE,
    POISONED,
    REVIEWED,
    WEATHER,
    WIDENED,
    ToolServer,
    ToolTable,
)

GOOD_WEATHER = {"city": "Oslo", "days": 3}
SECRET = "s3cr3t-value"
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "weather": ("get_weather", GOOD_WEATHER),
    "add": ("add", {"a": 2, "b": 3}),
    "add_bad": ("add", {"a": SECRET, "b": 1}),
    "weather_extra": ("get_weather", {"city": "Oslo", "units": SECRET}),
    "weather_missing": ("get_weather", {"days": 1}),
    "export_all": ("export_all", {}),
}


@pytest.fixture
def server() -> Iterator[ToolServer]:
    s = ToolServer(ToolTable()).start()
    yield s
    s.stop()


def route(url: str, on_change: str) -> dict[str, Any]:
    return {
        "name": "tools",
        "kind": "mcp",
        "match": {"path_prefix": "/mcp"},
        "upstream": url,
        "mcp": {"default": "allow", "pins": "pins/tools.yaml", "on_change": on_change},
    }


async def cli(*argv: str) -> int:
    """The real command line, off the event loop (it runs its own)."""
    return await asyncio.to_thread(main, list(argv))


async def session(url: str, mode: str = "auto", **calls: Any) -> dict[str, Any]:
    """List tools, then make each call; record results and JSON-RPC errors."""
    seen: dict[str, Any] = {"errors": {}}
    async with asyncio.timeout(30):
        async with (
            httpx2.AsyncClient(headers={"X-Caller-Role": "agent"}) as hc,
            Client(streamable_http_client(url, http_client=hc), mode=mode) as client,
        ):
            names: list[str] = []
            cursor = None
            for _ in range(10):  # every page: the proxy checks each one
                page = await client.list_tools(cursor=cursor)
                names += [t.name for t in page.tools]
                if not (cursor := page.next_cursor):
                    break
            seen["tools"] = sorted(names)
            for key, (tool, args) in calls.items():
                try:
                    result = await client.call_tool(tool, args)
                    seen[key] = json.loads(result.content[0].text)  # type: ignore[union-attr]
                except MCPError as exc:
                    seen["errors"][key] = exc.error
    return seen


def assert_refused(error: Any, code: ErrorCode, needle: str) -> None:
    assert error.code == ERROR_TABLE[code].jsonrpc_code
    assert error.data["error_code"] == code
    assert needle in error.message
    assert SECRET not in json.dumps(error.model_dump(mode="json"))


async def test_pin_writes_a_reviewable_file(server: ToolServer, write_rules: Any, capsys: Any):
    rules = write_rules([route(server.url, "block")])
    assert await cli("pin", "--route", "tools", "--rules", str(rules)) == 0
    assert "added: add, get_weather, note" in capsys.readouterr().out
    pin_path = rules.parent / "pins" / "tools.yaml"  # relative to the rules file's folder
    doc = yaml.safe_load(pin_path.read_text())
    assert doc["route"] == "tools" and list(doc["tools"]) == ["add", "get_weather", "note"]
    assert doc["tools"]["get_weather"]["description"] == WEATHER["description"]
    assert doc["tools"]["get_weather"]["inputSchema"] == WEATHER["inputSchema"]
    pins = load_pins(pin_path)
    assert {n: p.digest for n, p in pins.tools.items()} == {
        t["name"]: tool_digest(t) for t in REVIEWED
    }  # all pages followed (page size 2), digests as the proxy computes them on the wire
    before = pin_path.read_text()
    assert await cli("pin", "--route", "tools", "--rules", str(rules)) == 0
    assert "added" not in capsys.readouterr().out
    assert pin_path.read_text() == before  # stable: re-pinning an unchanged server is a no-op

    assert await cli("validate", str(rules)) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "tools.note: pinned without a description" in out

    server.restart([POISONED, ADD, NOTE, EXTRA])
    out_file = rules.parent / "review.yaml"
    assert await cli("pin", "--route", "tools", "--rules", str(rules), "--out", str(out_file)) == 0
    as_json = rules.parent / "pins.json"  # named .json: written as JSON, loads back the same
    assert await cli("pin", "--route", "tools", "--rules", str(rules), "--out", str(as_json)) == 0
    assert json.loads(as_json.read_text())["route"] == "tools"
    assert load_pins(as_json).tools == load_pins(out_file).tools
    assert await cli("pin", "--route", "tools", "--rules", str(rules)) == 0
    printed = capsys.readouterr().out
    assert "added: export_all" in printed and "changed: get_weather" in printed
    assert "<IMPORTANT>" in pin_path.read_text()  # the reviewer sees the new text in the diff


async def test_pin_reports_an_unreachable_server(write_rules: Any, capsys: Any) -> None:
    rules = write_rules([route("http://127.0.0.1:9/mcp", "block")])
    assert await cli("pin", "--route", "tools", "--rules", str(rules)) == 1
    err = capsys.readouterr().err
    assert "cannot list tools from http://127.0.0.1:9/mcp: connection refused" in err
    assert "TaskGroup" not in err and err.count("\n") == 1
    assert await cli("pin", "--route", "nope", "--rules", str(rules)) == 2


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_pinned_server_valid_calls_untouched(
    server: ToolServer, write_rules: Any, start_proxy: Any, mode: str
) -> None:
    rules = write_rules([route(server.url, "block")])
    assert await cli("pin", "--route", "tools", "--rules", str(rules)) == 0
    px = await start_proxy(rules)
    seen = await session(px.url + "/mcp", mode, **CALLS)
    assert seen["tools"] == ["add", "get_weather", "note"]
    assert seen["weather"] == {"tool": "get_weather", "arguments": GOOD_WEATHER}
    assert seen["add"] == {"tool": "add", "arguments": {"a": 2, "b": 3}}
    errors = seen["errors"]
    assert set(errors) == {"add_bad", "weather_extra", "weather_missing", "export_all"}
    assert_refused(errors["add_bad"], ErrorCode.INVALID_PARAMS, "at $.a: expected integer")
    assert_refused(errors["weather_extra"], ErrorCode.INVALID_PARAMS, "at $.units: property not")
    assert_refused(errors["weather_missing"], ErrorCode.INVALID_PARAMS, "at $.city: required")
    assert_refused(errors["export_all"], ErrorCode.POLICY_DENY, "not pinned")
    # refused calls never left the proxy; allowed ones arrived exactly as sent
    assert server.table.calls == [("get_weather", GOOD_WEATHER), ("add", {"a": 2, "b": 3})]
    failures = {"route": "tools", "tool": "get_weather", "event": "schema_failure"}
    assert px.metric("callwarden_tool_integrity_events_total", **failures) == 2


@pytest.mark.parametrize("changed", [POISONED, WIDENED], ids=["description", "schema"])
@pytest.mark.parametrize("on_change", ["block", "warn"])
async def test_restarted_server_with_changed_definitions(
    server: ToolServer,
    write_rules: Any,
    start_proxy: Any,
    caplog: pytest.LogCaptureFixture,
    changed: dict[str, Any],
    on_change: str,
) -> None:
    rules = write_rules([route(server.url, on_change)])
    assert await cli("pin", "--route", "tools", "--rules", str(rules)) == 0
    server.restart([changed, ADD, NOTE, EXTRA])
    px = await start_proxy(rules)
    widened_call = ("get_weather", {"city": "Oslo", "command": "cat /etc/passwd"})
    with caplog.at_level(logging.WARNING, logger="callwarden.integrity"):
        seen = await session(
            px.url + "/mcp",
            weather=CALLS["weather"],
            add=CALLS["add"],
            export_all=CALLS["export_all"],
            widened=widened_call,
        )
    errors = seen["errors"]
    assert_refused(errors["export_all"], ErrorCode.POLICY_DENY, "not pinned")  # new tool hidden
    assert seen["add"]["arguments"] == {"a": 2, "b": 3}  # unchanged tools unaffected
    metric = "callwarden_tool_integrity_events_total"
    assert px.metric(metric, route="tools", tool="get_weather", event="changed") == 1
    assert px.metric(metric, route="tools", tool="other", event="unpinned") == 1
    assert any("get_weather" in r.message and "differs" in r.message for r in caplog.records)
    if on_change == "block":
        assert seen["tools"] == ["add", "note"]
        assert_refused(errors["weather"], ErrorCode.POLICY_DENY, "tool definition changed")
        assert_refused(errors["widened"], ErrorCode.POLICY_DENY, "tool definition changed")
        assert px.metric(metric, route="tools", tool="get_weather", event="refused") == 2
        assert [c[0] for c in server.table.calls] == ["add"]
    else:
        assert seen["tools"] == ["add", "get_weather", "note"]
        assert seen["weather"]["arguments"] == GOOD_WEATHER  # passed, with the warning
        # the widened schema is not the approved one: calls still meet the pinned schema
        assert_refused(errors["widened"], ErrorCode.INVALID_PARAMS, "at $.command")
        assert [c[0] for c in server.table.calls] == ["get_weather", "add"]


async def test_definition_changed_mid_session(
    server: ToolServer, write_rules: Any, start_proxy: Any
) -> None:
    """Every tools/list is checked, not only the first one the process saw."""
    rules = write_rules([route(server.url, "block")])
    assert await cli("pin", "--route", "tools", "--rules", str(rules)) == 0
    px = await start_proxy(rules)
    url = px.url + "/mcp"
    first = await session(url, weather=CALLS["weather"])
    assert "get_weather" in first["tools"] and "weather" in first
    server.table.tools[0] = POISONED  # live: same server, same process, new definition
    second = await session(url, weather=CALLS["weather"])
    assert "get_weather" not in second["tools"]
    assert_refused(second["errors"]["weather"], ErrorCode.POLICY_DENY, "tool definition changed")
    server.table.tools[0] = WEATHER  # reverted: the pin holds again
    third = await session(url, weather=CALLS["weather"])
    assert "get_weather" in third["tools"] and "weather" in third
