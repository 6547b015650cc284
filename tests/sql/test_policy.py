"""SqlPolicy compilation and table matching."""

from __future__ import annotations

import pytest

from proxy.config.schema import SqlSpec
from proxy.sql.policy import SqlPolicy, table_matches


def test_from_spec_is_hashable_and_extends_builtins() -> None:
    spec = SqlSpec(dialect="mysql", blocked_functions=["My_UDF"], max_rows=7,
                   allowed_tables=["Orders"], tenant={"column": "tid", "tables": ["A.B"]})
    p = SqlPolicy.from_spec(spec)
    assert hash(p) == hash(SqlPolicy.from_spec(spec))
    assert p.function_blocked("MY_UDF") and p.function_blocked("pg_sleep")
    assert p.function_blocked("dblink_exec") and not p.function_blocked("sum")
    assert p.allowed_tables == {"orders"} and p.tenant_tables == {"a.b"} and p.max_rows == 7


@pytest.mark.parametrize(("names", "db", "name", "hit"), [
    ({"orders"}, "", "ORDERS", True),
    ({"orders"}, "sales", "orders", True),
    ({"public.orders"}, "", "orders", True),
    ({"public.orders"}, "public", "Orders", True),
    ({"public.orders"}, "other", "orders", False),
    ({"cat.public.orders"}, "public", "orders", True),
    ({"orders"}, "", "orders_archive", False),
])
def test_table_matches(names: set[str], db: str, name: str, hit: bool) -> None:
    assert table_matches(frozenset(names), db, name) is hit
