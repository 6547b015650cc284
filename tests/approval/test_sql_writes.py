"""`when: writes` on a writable SQL route: reads pass, every write statement is held;
the approval binds the statement as judged (tenant-scoped), so an approved DELETE cannot
be swapped for another."""

from __future__ import annotations

import pytest

from proxy.demo.backends import sql_app
from tests.approval.conftest import TOP, decide


@pytest.fixture
async def sql_backend(serve_app) -> str:
    return await serve_app(sql_app())


def sql_route(url: str) -> dict:
    return {
        "name": "db",
        "kind": "sql",
        "match": {"path_prefix": "/db"},
        "upstream": url,
        "approval": {"approvers": ["dba"], "when": "writes", "mode": "defer"},
        "sql": {
            "dialect": "sqlite",
            "read_only": False,
            "tenant": {"column": "tenant_id", "tables": ["orders", "customers"]},
        },
    }


async def run(px, sql: str, **headers: str):
    async with px.session.post(
        px.url + "/db/query", json={"query": sql}, headers={"X-Tenant-ID": "acme", **headers}
    ) as r:
        return r.status, await r.json()


async def test_reads_pass_writes_wait_for_a_dba(sql_backend, admin_token, write_rules, start_proxy):
    px = await start_proxy(write_rules([sql_route(sql_backend)], **TOP))
    status, body = await run(px, "SELECT count(*) FROM orders")
    assert status == 200 and body["rows"] == [[2]]
    status, body = await run(px, "DELETE FROM orders WHERE id = 1")
    assert status == 428 and body["error"]["code"] == "APPROVAL_PENDING"
    approval_id = body["error"]["approval_id"]
    assert (await decide(px, approval_id, roles="dba"))[0] == 200
    retry = {"X-CallWarden-Approval": approval_id}
    status, body = await run(px, "DELETE FROM orders", **retry)  # not what was approved
    assert status == 403 and body["error"]["code"] == "APPROVAL_MISMATCH"
    assert (await run(px, "SELECT count(*) FROM orders"))[1]["rows"] == [[2]]
    status, _ = await run(px, "DELETE FROM orders WHERE id = 1", **retry)
    assert status == 200
    assert (await run(px, "SELECT count(*) FROM orders"))[1]["rows"] == [[1]]
