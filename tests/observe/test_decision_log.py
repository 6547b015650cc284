"""The decision log: what it records, that secrets never reach the file, caps, rotation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from proxy.config.schema import DecisionLogSpec
from proxy.model.record import CallRecord
from proxy.observe.decision_log import (
    DecisionLog,
    body_text,
    cap,
    mask_headers,
    mask_json,
    mask_text,
)

TOKEN = "Zq8vN3xK5mP2rT7wY4bH6jL9cF1dG0sA"
PASSWORD = "Hunter2&Correct#Horse!"
GITHUB = "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {TOKEN}", TOKEN),
        (f"password={PASSWORD}", PASSWORD.split("&")[0]),
        (f'{{"db_password": "{PASSWORD}"}}', PASSWORD),
        (f"postgres://app:{PASSWORD.split('&')[0]}@db/x", PASSWORD.split("&")[0]),
        (f"SELECT * FROM t WHERE api_key = '{TOKEN}'", TOKEN),
        (f"see {GITHUB} here", GITHUB),
        (f"X-Api-Key: {GITHUB}", GITHUB),
        ("x" * 50_000 + f" token={TOKEN}", TOKEN),
    ],
)
def test_mask_text_removes_credentials(text, secret):
    out = mask_text(text)
    assert secret not in out and "[REDACTED]" in out and "]]" not in out


def test_a_credential_cut_by_the_cap_is_masked_first():
    text = body_text(("a" * 90 + f" password={PASSWORD}").encode(), "text/plain", 100)
    assert cap(text, 100)[0] == "a" * 90 + " password="
    assert PASSWORD[:4] not in text


@pytest.mark.parametrize(
    "text", ["SELECT id FROM orders WHERE tenant_id = 't1'", "token_count=5", "password=${env:PW}"]
)
def test_mask_text_keeps_ordinary_text(text):
    assert mask_text(text) == text


def test_mask_json_and_headers():
    doc = {"query": "select 1", "auth": {"password": PASSWORD, "ref": "${vault:a#b}"},
           "items": [{"api_key": TOKEN}], "n": 3}
    out = mask_json(doc)
    assert out["query"] == "select 1" and out["n"] == 3
    assert out["auth"] == {"password": "[REDACTED]", "ref": "${vault:a#b}"}
    assert out["items"] == [{"api_key": "[REDACTED]"}]
    headers = mask_headers({"Authorization": f"Basic {TOKEN}", "X-Api-Key": TOKEN,
                            "Content-Type": "application/json", "Host": "x"})
    assert headers == [["Authorization", "[REDACTED]"], ["X-Api-Key", "[REDACTED]"],
                       ["Content-Type", "application/json"]]


def http_route(url: str, **extra) -> dict:
    return {"name": "api", "match": {"path_prefix": "/api"}, "upstream": url, **extra}


async def test_records_a_call_with_secrets_masked(upstream, write_rules, start_proxy, tmp_path):
    _, url = upstream
    log = tmp_path / "decisions.jsonl"
    obs = {"decision_log": {"path": str(log)}}
    px = await start_proxy(write_rules([http_route(url)], environment="development",
                                       observability=obs))
    body = {"query": "select 1", "password": PASSWORD, "dsn": f"mysql://u:{TOKEN}@db/x",
            "nested": {"token": GITHUB}}
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Tenant-ID": "t1",
               "X-Caller-Role": "analyst", "Cookie": f"session={TOKEN}"}
    async with px.session.post(px.url + f"/api/run?api_key={TOKEN}", json=body,
                               headers=headers) as r:
        assert r.status == 200
    async with px.session.get(px.url + "/nowhere") as r:
        assert r.status == 403
    await asyncio.to_thread(px.state.decision_log.flush)
    text = log.read_text()
    for secret in (TOKEN, PASSWORD, GITHUB, PASSWORD.split("&")[0]):
        assert secret not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["route"] == "api" and first["method"] == "POST" and first["path"] == "/api/run"
    assert first["tenant"] == "t1" and first["role"] == "analyst"
    assert first["verdict"] == "allow" and first["code"] is None
    assert json.loads(first["body"])["query"] == "select 1"
    assert second["verdict"] == "deny" and second["code"] == "POLICY_DENY"
    assert second["route"] is None and second["path"] == "/nowhere"


async def test_off_by_default_and_denials_recorded(upstream, write_rules, start_proxy, tmp_path):
    _, url = upstream
    px = await start_proxy(write_rules([http_route(url)]))
    assert px.state.decision_log is None
    log = tmp_path / "d.jsonl"
    px = await start_proxy(write_rules(
        [http_route(url, access={"roles": ["admin"]})], name="r2.yaml",
        observability={"decision_log": {"path": str(log), "max_body_bytes": 64}},
    ))
    async with px.session.post(px.url + "/api/x", data="y" * 500,
                               headers={"X-Caller-Role": "intern",
                                        "Content-Type": "text/plain"}) as r:
        assert r.status == 403
    await asyncio.to_thread(px.state.decision_log.flush)
    rec = json.loads(log.read_text())
    assert rec["verdict"] == "deny" and rec["code"] == "PERMISSION_DENIED"
    assert rec["guard"] == "access" and rec["reason"]


def test_body_cap_and_rotation(tmp_path):
    from multidict import CIMultiDict, CIMultiDictProxy

    from proxy.model.call import Request

    path = tmp_path / "d.jsonl"
    spec = DecisionLogSpec(path=str(path), max_bytes=2000, backups=2, max_body_bytes=100)
    dl = DecisionLog(spec)
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "text/plain"}))
    for i in range(60):
        rec = CallRecord(start=0.0, method="POST", route="api", path=f"/api/{i}", outcome="ok")
        rec.decision_input = {"headers": headers, "request": Request("POST", "/", body=b"x" * 500)}
        dl.submit(rec)
    dl.flush()
    dl.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["d.jsonl", "d.jsonl.1", "d.jsonl.2"]
    lines = []
    for name in files:
        data = (tmp_path / name).read_text()
        assert len(data) < 2000 + 1000  # rotated once over the limit: at most one line more
        lines += [json.loads(line) for line in data.splitlines()]
    assert all(len(r["body"]) == 100 and r["body_truncated"] for r in lines)
    assert lines[-1]["path"] != "/api/0"  # the oldest were rotated away


def test_rotation_without_backups(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    dl = DecisionLog(DecisionLogSpec(path=str(path), max_bytes=500, backups=0))
    for i in range(20):
        rec = CallRecord(start=0.0, method="GET", route="api", path=f"/{i}")
        rec.decision_input = {"query": f"n={i}"}
        dl.submit(rec)
    dl.submit(CallRecord(start=0.0, method="GET"))  # no decision input: not logged
    dl.close()
    assert [p.name for p in tmp_path.iterdir()] == ["d.jsonl"]
    assert path.stat().st_size < 1000
