"""`callwarden replay`: a corpus recorded through a running proxy, re-judged under
candidate rules; the diff, its grouping and the exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from proxy.cli import main
from proxy.config.load import load_rules
from proxy.replay import Judgement, classify, dry_compile, read_log, replay


def rt(url: str, name: str, roles: list[str] | None = None, **extra) -> dict:
    r = {"name": name, "match": {"path_prefix": f"/{name}"}, "upstream": url, **extra}
    if roles is not None:
        r["access"] = {"roles": roles}
    return r


def write(path: Path, routes: list[dict], **top) -> str:
    path.write_text(yaml.safe_dump({"version": 1, **top, "routes": routes}, sort_keys=False))
    return str(path)


CALLS = [  # (role, path, recorded verdict)
    ("analyst", "/api/a", "allow"),
    ("admin", "/api/b", "allow"),
    ("analyst", "/ops/c", "deny"),
    ("", "/open/d", "allow"),
    ("", "/gone/e", "allow"),
    ("analyst", "/api/f", "allow"),
]


async def record(start_proxy, tmp_path: Path, routes: list[dict], calls) -> Path:
    log = tmp_path / "decisions.jsonl"
    rules = write(tmp_path / "v1.yaml", routes, observability={"decision_log": {"path": str(log)}})
    px = await start_proxy(rules)
    for role, path, *body in calls:
        headers = {"X-Caller-Role": role, "X-Tenant-ID": "t1"} if role else {"X-Tenant-ID": "t1"}
        if body:
            async with px.session.post(px.url + path, json=body[0], headers=headers) as r:
                await r.read()
        else:
            async with px.session.get(px.url + path, headers=headers) as r:
                await r.read()
    await asyncio.to_thread(px.state.decision_log.flush)
    return log


@pytest.fixture
async def corpus(upstream, start_proxy, tmp_path) -> tuple[str, Path]:
    _, url = upstream
    v1 = [rt(url, "api", ["admin", "analyst"]), rt(url, "ops", ["ops"]), rt(url, "open"),
          rt(url, "gone")]
    log = await record(start_proxy, tmp_path, v1, CALLS)
    recorded = [json.loads(line)["verdict"] for line in log.read_text().splitlines()]
    assert recorded == [v for _, _, v in CALLS]
    return url, log


async def cli(*args: str) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):
            return main(list(args))

    code = await asyncio.to_thread(run)
    return code, out.getvalue()


async def test_replay_diff_and_exit_codes(corpus, tmp_path):
    url, log = corpus
    v2 = write(tmp_path / "v2.yaml",
               [rt(url, "api", ["admin"]), rt(url, "ops", ["ops", "analyst"]), rt(url, "open")])
    code, out = await cli("replay", "--rules", v2, "--log", str(log), "--json")
    assert code == 1
    report = json.loads(out)
    assert (report["total"], report["unchanged"], report["skipped"]) == (6, 2, 0)
    denied = report["newly_denied"]
    assert denied["count"] == 3
    assert [(g["route"], g["code"], g["count"]) for g in denied["groups"]] == [
        ("api", "PERMISSION_DENIED", 2),
        ("gone", "POLICY_DENY", 1),  # the route it had, now gone
    ]
    example = denied["groups"][0]["examples"][0]
    assert example["path"] == "/api/a" and example["role"] == "analyst"
    assert example["before"]["verdict"] == "allow" and example["after"]["verdict"] == "deny"
    allowed = report["newly_allowed"]
    assert [(g["route"], g["code"], g["count"]) for g in allowed["groups"]] == [
        ("ops", "PERMISSION_DENIED", 1)
    ]
    assert report["rewritten_differently"]["count"] == 0

    code, out = await cli("replay", "--rules", v2, "--log", str(log))
    assert code == 1 and "newly denied: 3" in out and "newly allowed: 1" in out

    looser = write(tmp_path / "v3.yaml", [rt(url, "api", ["admin", "analyst"]),
                                          rt(url, "ops", ["*"]), rt(url, "open"), rt(url, "gone")])
    code, out = await cli("replay", "--rules", looser, "--log", str(log), "--json")
    report = json.loads(out)
    assert code == 0 and report["newly_denied"]["count"] == 0
    assert report["newly_allowed"]["count"] == 1 and report["unchanged"] == 5


async def test_replay_same_rules_is_clean_and_errors_exit_2(corpus, tmp_path):
    url, log = corpus
    same = write(tmp_path / "same.yaml", [rt(url, "api", ["admin", "analyst"]),
                                          rt(url, "ops", ["ops"]), rt(url, "open"),
                                          rt(url, "gone")])
    code, out = await cli("replay", "--rules", same, "--log", str(log), "--json")
    assert code == 0 and json.loads(out)["unchanged"] == 6
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nroutes: [{name: x}]\n")
    assert (await cli("replay", "--rules", str(bad), "--log", str(log)))[0] == 2
    assert (await cli("replay", "--rules", same, "--log", str(tmp_path / "nope")))[0] == 2


async def test_audit_to_enforce_shows_as_newly_denied(upstream, start_proxy, tmp_path):
    """The rollout question: what would enforcing the audited guard have refused?"""
    _, url = upstream
    audited = rt(url, "crm", ["admin"], guard_modes={"access": "audit"})
    calls = [("intern", "/crm/x"), ("admin", "/crm/y")]
    log = await record(start_proxy, tmp_path, [audited], calls)
    first = json.loads(log.read_text().splitlines()[0])
    assert first["verdict"] == "allow" and first["would_deny"][0]["guard"] == "access"
    enforced = dry_compile(load_rules(write(tmp_path / "e.yaml", [rt(url, "crm", ["admin"])])))
    report = await replay(enforced, read_log(log.read_text().splitlines()))
    assert report["newly_denied"]["count"] == 1 and report["unchanged"] == 1


async def test_unreadable_and_truncated_records_are_skipped(upstream, tmp_path):
    _, url = upstream
    compiled = dry_compile(load_rules(write(tmp_path / "r.yaml", [rt(url, "api")])))
    lines = ["not json", json.dumps({"verdict": "allow", "path": "/api/x", "body": "x",
                                     "body_truncated": True}),
             json.dumps({"verdict": "allow", "method": "GET", "path": "/api/x"})]
    report = await replay(compiled, read_log(lines))
    assert (report["total"], report["skipped"], report["unchanged"]) == (3, 2, 1)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"verdict": "allow"}, Judgement("allow", "r"), None),
        ({"verdict": "allow"}, Judgement("deny", "r", "SQL_BLOCKED"),
         ("newly_denied", "SQL_BLOCKED")),
        ({"verdict": "deny", "code": "RATE_LIMITED"}, Judgement("allow", "r"),
         ("newly_allowed", "RATE_LIMITED")),
        ({"verdict": "deny", "code": "SQL_BLOCKED"}, Judgement("deny", "r", "SQL_BLOCKED"), None),
        ({"verdict": "deny", "code": "SQL_BLOCKED"}, Judgement("deny", "r", "TENANT_MISMATCH"),
         ("code_changed", "SQL_BLOCKED -> TENANT_MISMATCH")),
        ({"verdict": "allow", "rewritten_sql": "A"},
         Judgement("allow", "r", rewrite={"rewritten_sql": "A"}), None),
        ({"verdict": "allow", "rewritten_sql": "A"},
         Judgement("allow", "r", rewrite={"rewritten_sql": "B"}),
         ("rewritten_differently", "")),
        ({"verdict": "allow"}, Judgement("allow", "r", rewrite={"rewritten_sql": "B"}),
         ("rewritten_differently", "")),
        ({"verdict": "allow", "rewritten_body": "{}"}, Judgement("allow", "r"),
         ("rewritten_differently", "")),
    ],
)
def test_classify(old, new, expected):
    assert classify(old, new) == expected


async def test_replay_sees_a_new_tenant_predicate(upstream, start_proxy, tmp_path):
    _, url = upstream

    def sql_route(tables: list[str]) -> dict:
        return {"name": "wh", "kind": "sql", "match": {"path_prefix": "/wh"}, "upstream": url,
                "sql": {"location": {"json": "/query"},
                        "tenant": {"column": "tenant_id", "tables": tables}}}

    calls = [("analyst", "/wh/q", {"query": "SELECT id FROM customers"}),
             ("analyst", "/wh/q", {"query": "SELECT id FROM orders"}),
             ("analyst", "/wh/q", {"query": "DELETE FROM orders"})]
    log = await record(start_proxy, tmp_path, [sql_route(["orders"])], calls)
    recorded = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["verdict"] for r in recorded] == ["allow", "allow", "deny"]
    assert "rewritten_sql" not in recorded[0] and "t1" in recorded[1]["rewritten_sql"]
    v2 = dry_compile(load_rules(write(tmp_path / "v2.yaml", [sql_route(["orders", "customers"])])))
    report = await replay(v2, read_log(log.read_text().splitlines()))
    changed = report["rewritten_differently"]
    assert changed["count"] == 1 and report["unchanged"] == 2
    example = changed["groups"][0]["examples"][0]
    assert "tenant_id" in example["after"]["rewritten_sql"]


async def test_rate_limited_calls_stay_denied_under_unchanged_rules(upstream, start_proxy,
                                                                    tmp_path):
    """A dry run skips the rate limiter, so a recorded RATE_LIMITED refusal cannot be
    re-judged: under rules that keep the limit it stands (before: 'newly allowed')."""
    _, url = upstream
    v1 = [rt(url, "api", limits={"rate": {"per_minute": 1, "key": "route"}})]
    log = await record(start_proxy, tmp_path, v1, [("", "/api/a"), ("", "/api/b")])
    assert [json.loads(x)["code"] for x in log.read_text().splitlines()] == [
        None, "RATE_LIMITED"]
    same = write(tmp_path / "same.yaml", v1)
    code, out = await cli("replay", "--rules", same, "--log", str(log), "--json")
    report = json.loads(out)
    assert code == 0 and report["unchanged"] == 2 and report["newly_allowed"]["count"] == 0
    lifted = write(tmp_path / "lifted.yaml", [rt(url, "api")])  # the limit is gone
    code, out = await cli("replay", "--rules", lifted, "--log", str(log))
    assert code == 0 and "newly allowed: 1" in out
    assert not any(line.rstrip().endswith("->") for line in out.splitlines())
