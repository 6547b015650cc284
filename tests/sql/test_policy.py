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
    assert p.function_blocked("MY_UDF") and p.function_blocked("sleep")
    assert not p.function_blocked("pg_sleep")  # no list crosses dialects
    pg = SqlPolicy.from_spec(SqlSpec(dialect="postgres"))
    assert pg.function_blocked("dblink_exec") and not pg.function_blocked("sum")
    assert not pg.function_blocked("sleep")
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
