"""Row caps over the JSON result shapes the proxy can count."""

from __future__ import annotations

import json

import pytest

from proxy.sql.rows import TRUNCATED_KEY, cap_rows

ROWS = [[i] for i in range(5)]


@pytest.mark.parametrize(("payload", "rows_of"), [
    (ROWS, lambda p: p),
    ({"rows": ROWS, "columns": ["a"]}, lambda p: p["rows"]),
    ({"data": ROWS, "columns": ["a"]}, lambda p: p["data"]),
    ({"meta": [{"name": "a"}], "data": ROWS, "rows": 5, "statistics": {}},
     lambda p: p["data"]),  # ClickHouse JSON
    ({"result": {"data_array": ROWS, "row_count": 5}, "status": {}},
     lambda p: p["result"]["data_array"]),  # Databricks
])
def test_caps(payload: object, rows_of: object) -> None:
    assert cap_rows(payload, 5) == (payload, False)
    assert cap_rows(payload, 4) == (payload, True)  # deny: unchanged, caller refuses
    cut, exceeded = cap_rows(payload, 2, "truncate")
    assert exceeded and rows_of(cut) == ROWS[:2]  # type: ignore[operator]
    assert rows_of(payload) == ROWS  # type: ignore[operator]  # input not mutated
    if isinstance(cut, dict):
        assert cut[TRUNCATED_KEY] is True
        assert cut.get("rows", 2) in (2, cut.get("rows")) and (
            not isinstance(cut.get("rows"), int) or cut["rows"] == 2)


@pytest.mark.parametrize("payload", [{"rows": 5}, {"x": [1, 2, 3]}, "text", 7, None])
def test_uncountable_payloads_pass(payload: object) -> None:
    assert cap_rows(payload, 1, "truncate") == (payload, False)


@pytest.mark.parametrize("cap", [1, 2, 3, 4])
def test_filter_comma_bound_is_exact_at_the_cap(cap: int) -> None:
    """The filter skips the parse when the answer has fewer commas than the cap: one
    row over the cap, with no spare comma anywhere, must still be refused."""
    from proxy.model.errors import ProxyError
    from proxy.sql.rows import RowCapFilter

    at_cap = json.dumps([[i] for i in range(cap)], separators=(",", ":")).encode()
    over = json.dumps([[i] for i in range(cap + 1)], separators=(",", ":")).encode()
    f = RowCapFilter(cap, "deny")
    assert f.body(at_cap, "application/json") == at_cap
    with pytest.raises(ProxyError) as err:
        f.body(over, "application/json")
    assert str(err.value.code) == "MAX_ROWS_EXCEEDED"
    cut = RowCapFilter(cap, "truncate").body(over, "application/json")
    assert json.loads(cut) == [[i] for i in range(cap)]
