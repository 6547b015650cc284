"""Secrets never reach logs or metric labels through caller-controlled values (issue 21,
item 5): tenant and role headers are held to a grammar and refused (AUTH_FAILED) before
anything records them; the path is logged with credential-looking parts masked; a token
sent as a trace id is not kept. End to end: access log, decision log, /metrics, and the
response the caller gets, against a real loopback upstream."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.credentials.fakes import rnd

GITHUB = "ghp_" + rnd(36)
OPAQUE = "s3cr3t value " + rnd(24)
"""Not a known token format: refused by the grammar (a space), never by a detector."""


@pytest.fixture
async def logged(upstream, write_rules, start_proxy, tmp_path, caplog):
    """A proxy with an access log (captured), a decision log and a tenant-labelled route,
    in development mode (so a credential in a path is warned about, not refused: the
    call goes through and its path is logged)."""
    _up, url = upstream
    caplog.set_level(logging.INFO, logger="callwarden.access")
    log = tmp_path / "decisions.jsonl"
    px = await start_proxy(
        write_rules(
            [
                {
                    "name": "api",
                    "match": {"path_prefix": "/api"},
                    "upstream": url,
                    "tenant": {"label": True, "forward_header": "X-Tenant-ID"},
                }
            ],
            environment="development",
            observability={"decision_log": {"path": str(log)}},
        )
    )

    async def everything() -> str:
        await _access_lines(caplog)
        await asyncio.to_thread(px.state.decision_log.flush)
        async with px.session.get(px.admin + "/metrics") as r:
            metrics = await r.text()
        return "\n".join([caplog.text, log.read_text(), metrics])

    async def decisions() -> list[dict]:
        await _access_lines(caplog)  # the call is over (it is recorded once, for both)
        await asyncio.to_thread(px.state.decision_log.flush)
        return [json.loads(line) for line in log.read_text().splitlines()]

    px.everything = everything
    px.decisions = decisions
    return px


async def _access_lines(caplog) -> list[dict]:
    """The access-log lines, once there is one (a streamed answer is logged after its
    last byte left, which may be after the client has it)."""
    for _ in range(250):
        lines = [r.getMessage() for r in caplog.records if r.name == "callwarden.access"]
        if lines:
            return [json.loads(line) for line in lines]
        await asyncio.sleep(0.02)
    return []


@pytest.mark.parametrize("value", [GITHUB, OPAQUE, "acme\" ,\"forged\": \"1", "t" * 129])
async def test_tenant_that_breaks_the_grammar_is_refused_and_never_logged(
    logged, upstream, caplog, value: str
) -> None:
    up, _ = upstream
    async with logged.session.get(logged.url + "/api/x", headers={"X-Tenant-ID": value}) as r:
        body = await r.text()
        assert r.status == 401 and r.headers["X-CallWarden-Error-Code"] == "AUTH_FAILED"
    assert value not in body
    assert not up.calls
    everything = await logged.everything()
    assert value not in everything
    (line,) = await _access_lines(caplog)
    assert line["tenant"] is None and line["error_code"] == "AUTH_FAILED"
    (decision,) = await logged.decisions()
    assert decision["tenant"] is None
    assert all(name.lower() != "x-tenant-id" for name, _ in decision["headers"])


@pytest.mark.parametrize("value", [GITHUB, "admin, " + OPAQUE])
async def test_role_that_breaks_the_grammar_is_refused_and_never_logged(
    logged, caplog, value: str
) -> None:
    async with logged.session.get(logged.url + "/api/x", headers={"X-Caller-Role": value}) as r:
        assert r.status == 401 and r.headers["X-CallWarden-Error-Code"] == "AUTH_FAILED"
    everything = await logged.everything()
    assert GITHUB not in everything and OPAQUE not in everything
    (line,) = await _access_lines(caplog)
    assert line["role"] == ""


async def test_tenant_sent_twice_is_refused(logged, upstream) -> None:
    up, _ = upstream
    headers = [("X-Tenant-ID", "acme"), ("X-Tenant-ID", "globex")]
    async with logged.session.get(logged.url + "/api/x", headers=headers) as r:
        assert r.status == 401 and r.headers["X-CallWarden-Error-Code"] == "AUTH_FAILED"
    assert not up.calls


async def test_valid_tenant_and_roles_are_logged_as_sent(logged, upstream, caplog) -> None:
    up, _ = upstream
    headers = {"X-Tenant-ID": "org:acme.eu-1@corp", "X-Caller-Role": "agent, ops_reader"}
    async with logged.session.get(logged.url + "/api/x", headers=headers) as r:
        assert r.status == 200
    assert up.calls[0]["headers"]["X-Tenant-ID"] == "org:acme.eu-1@corp"
    (line,) = await _access_lines(caplog)
    assert (line["tenant"], line["role"]) == ("org:acme.eu-1@corp", "agent, ops_reader")
    (decision,) = await logged.decisions()
    assert (decision["tenant"], decision["role"]) == ("org:acme.eu-1@corp", "agent, ops_reader")
    assert 'tenant="org:acme.eu-1@corp"' in await logged.everything()


async def test_credential_in_the_path_is_masked_in_both_logs(logged, caplog) -> None:
    async with logged.session.get(logged.url + f"/api/repos/{GITHUB}/items/api_key=hunter2xyz"):
        pass
    everything = await logged.everything()
    assert GITHUB not in everything and "hunter2xyz" not in everything
    (line,) = await _access_lines(caplog)
    assert line["path"].startswith("/api/repos/[REDACTED]/items")
    (decision,) = await logged.decisions()
    assert decision["path"] == line["path"]


async def test_token_sent_as_trace_id_is_not_kept(logged, caplog) -> None:
    async with logged.session.get(logged.url + "/api/x", headers={"X-Trace-ID": GITHUB}) as r:
        assert r.headers["X-Trace-ID"] != GITHUB
    assert GITHUB not in await logged.everything()
    (line,) = await _access_lines(caplog)
    assert line["trace_id"] == r.headers["X-Trace-ID"]


async def test_spent_budget_is_logged_as_zero(logged, upstream, caplog) -> None:
    up, _ = upstream
    headers = {"X-Request-Budget-Ms": "0", "X-Orchestration-Phase": "plan"}
    async with logged.session.get(logged.url + "/api/x", headers=headers) as r:
        assert r.headers["X-CallWarden-Error-Code"] == "PLAN_TIMEOUT"
    assert not up.calls
    (line,) = await _access_lines(caplog)
    assert line["budget_ms"] == 0  # was null: the log hid why the call was refused
