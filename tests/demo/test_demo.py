"""`callwarden demo` starts on a fresh checkout and its printed calls behave as printed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _call(url: str, headers: dict[str, str], data: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_demo_starts_and_answers() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxy.cli",
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--duration",
            "20",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = None
        end = time.monotonic() + 20
        while url is None and time.monotonic() < end:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            m = re.search(r"proxy (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        assert url, "demo did not print its address"
        ok = _call(url + "/crm/customers", {"X-Caller-Role": "manager", "X-Tenant-ID": "acme"})
        # the backend echoes the token it got; the proxy masks the injected value
        assert ok[0] == 200 and ok[1]["authorization_received"] == "Bearer [REDACTED]"
        denied = _call(url + "/crm/customers", {"X-Caller-Role": "intern", "X-Tenant-ID": "acme"})
        assert (denied[0], denied[1]["error"]["code"]) == (403, "PERMISSION_DENIED")
        sql = {"X-Caller-Role": "analyst", "X-Tenant-ID": "globex"}
        rows = _call(
            url + "/analytics/query", sql, b'{"query": "SELECT item FROM orders ORDER BY id"}'
        )
        assert rows[0] == 200 and rows[1]["rows"] == [["laser"], ["shark"]]
        assert "tenant_id = 'globex'" in rows[1]["sql_received"]  # the rewrite, shown
        drop = _call(url + "/analytics/query", sql, b'{"query": "DROP TABLE orders"}')
        assert drop[1]["error"]["code"] == "SQL_BLOCKED"
        mcp = {
            **sql,
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        listed = _call(url + "/mcp", mcp, b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}')
        assert [t["name"] for t in listed[1]["result"]["tools"]] == ["get_weather", "run_sql"]
        call = (
            b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "run_sql",'
            b' "arguments": {"query": "SELECT item FROM orders ORDER BY id"}}}'
        )
        rows = _call(url + "/mcp", mcp, call)
        assert rows[1]["result"]["content"][0]["text"] == '[["laser"], ["shark"]]'  # globex only
        # 9: delete_customer is held for an on-call approval, then goes through once
        admin = None
        while admin is None and time.monotonic() < end + 10:
            m = re.search(r"admin: (http://127\.0\.0\.1:\d+)/metrics", proc.stdout.readline())  # type: ignore[union-attr]
            admin = m.group(1) if m else None
        assert admin, "demo did not print its admin address"
        held_call = (
            b'{"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name":'
            b' "delete_customer", "arguments": {"customer_id": 1}}}'
        )
        as_admin = {**mcp, "X-Caller-Role": "admin"}
        held = _call(url + "/mcp", as_admin, held_call)[1]["error"]["data"]
        assert held["error_code"] == "APPROVAL_PENDING"
        approver = {
            "Authorization": "Bearer demo-approver-token-not-a-secret",
            "X-Approver": "dana",
            "X-Approver-Role": "on-call",
        }
        decided = _call(f"{admin}/approvals/{held['approval_id']}/approve", approver, b"{}")
        assert decided[0] == 200 and decided[1]["status"] == "approved"
        retry = {**as_admin, "X-CallWarden-Approval": held["approval_id"]}
        done = _call(url + "/mcp", retry, held_call)
        assert done[1]["result"]["content"][0]["text"] == "deleted 1"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
