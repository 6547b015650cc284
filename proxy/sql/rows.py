"""Row caps on JSON results the proxy can count: a bare list of rows, `{"rows": [...]}`,
`{"data": [...]}` (ClickHouse JSON, Trino, Snowflake) and Databricks'
`{"result": {"data_array": [...]}}`. Anything else is passed through uncounted."""

from __future__ import annotations

from typing import Any, Literal

TRUNCATED_KEY = "callwarden_truncated"


def _rows(payload: Any) -> tuple[list[Any], str | None, Any] | None:
    """(rows, key, container) where container[key] is the list (key None: top level)."""
    if isinstance(payload, list):
        return payload, None, None
    if not isinstance(payload, dict):
        return None
    for key in ("rows", "data"):
        if isinstance(payload.get(key), list):
            return payload[key], key, payload
    result = payload.get("result")
    if isinstance(result, dict) and isinstance(result.get("data_array"), list):
        return result["data_array"], "data_array", result
    return None


def cap_rows(
    payload: Any, max_rows: int, on_excess: Literal["deny", "truncate"] = "deny"
) -> tuple[Any, bool]:
    """(payload, exceeded). `deny`: the payload is returned unchanged and the caller
    refuses with MAX_ROWS_EXCEEDED. `truncate`: a copy cut to `max_rows` rows, with a
    `callwarden_truncated: true` marker on object payloads (lists cannot carry one, so
    the codec should also set a response header)."""
    found = _rows(payload)
    if found is None:
        return payload, False
    rows, key, container = found
    if len(rows) <= max_rows:
        return payload, False
    if on_excess == "deny":
        return payload, True
    cut = rows[:max_rows]
    if key is None:
        return cut, True
    out = dict(payload)
    if container is payload:
        out[key] = cut
        if key == "data" and isinstance(out.get("rows"), int):
            out["rows"] = len(cut)  # ClickHouse JSON row count
    else:
        result = dict(container)
        result["data_array"] = cut
        if isinstance(result.get("row_count"), int):
            result["row_count"] = len(cut)
        out["result"] = result
    out[TRUNCATED_KEY] = True
    return out, True
