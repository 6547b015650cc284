"""Row caps over the JSON result shapes the proxy can count."""

from __future__ import annotations

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
