"""Graph policy: procedure globs and tenant pinning shared by both judges."""

from __future__ import annotations

import pytest

from proxy.graph.policy import GraphPolicy, pin_tenant
from proxy.model.errors import ErrorCode


@pytest.mark.parametrize(
    ("name", "read_only", "blocked"),
    [
        ("dbms.security.createUser", True, True),
        ("DBMS.Components", True, True),
        ("db.labels", True, False),
        ("db.createLabel", True, True),
        ("apoc.load.csv", True, True),
        ("apoc.meta.schema", True, False),
        ("gds.pageRank.write", True, True),
        ("gds.pageRank.stream", True, False),
        ("dbms.security.createUser", False, False),
        ("custom.wipe", False, True),
        ("custom.wipe", True, True),
        ("custom.read", True, False),
    ],
)
def test_procedure_blocked(name: str, read_only: bool, blocked: bool) -> None:
    p = GraphPolicy(read_only=read_only, blocked_procedures=("Custom.Wipe",))
    assert p.procedure_blocked(name) is blocked


@pytest.mark.parametrize(
    ("params", "tenant", "expected"),
    [
        (None, "t", (None, {"tid": "t"}, True)),
        ({"a": 1}, "t", (None, {"a": 1, "tid": "t"}, True)),
        ({"tid": "t"}, "t", (None, {"tid": "t"}, False)),
        ({"tid": "u"}, "t", (ErrorCode.TENANT_MISMATCH, {"tid": "u"}, False)),
        ({"tid": 1}, "1", (ErrorCode.TENANT_MISMATCH, {"tid": 1}, False)),
        ({}, None, (ErrorCode.AUTH_FAILED, {}, False)),
    ],
)
def test_pin_tenant(params: dict | None, tenant: str | None, expected: tuple) -> None:
    code, _, out, changed = pin_tenant(params, "tid", tenant)
    assert (code, out, changed) == expected
