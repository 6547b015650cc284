"""Row caps on JSON results the proxy can count: a bare list of rows, `{"rows": [...]}`,
`{"data": [...]}` (ClickHouse JSON, Trino, Snowflake) and Databricks'
`{"result": {"data_array": [...]}}`. Anything else is passed through uncounted."""

from __future__ import annotations

from typing import Any, Literal

from proxy.guards.base import FilterRefused
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.jsonio import dumps, loads

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


_LINE_TYPES = ("ndjson", "jsonl", "json-seq", "jsonlines", "x-json-stream")


def _form(content_type: str) -> str:
    """How rows are counted in an answer of this type: json, lines, or other (not)."""
    ct = content_type.lower()
    if "json" not in ct:
        return "other"
    return "lines" if any(t in ct for t in _LINE_TYPES) else "json"


_FORMS: dict[str, str] = {}  # content type -> _form (per-answer work, done once)


class RowCapFilter:
    """Counts rows of a JSON result (or of a JSON-lines one, a row a line): over the cap
    is MAX_ROWS_EXCEEDED, or a cut with a marker when the route says on_excess: truncate.
    A JSON answer it cannot read is refused, not passed on uncounted."""

    __slots__ = ("max_rows", "on_excess")
    name = "row_cap"

    def __init__(self, max_rows: int, on_excess: str) -> None:
        self.max_rows = max_rows
        self.on_excess = on_excess

    def fits(self, length: int) -> bool:
        """SECURITY: n rows take n bytes at least (JSON: n-1 commas and n values; JSON
        lines: n non-blank lines), so an unencoded answer of fewer bytes than the cap
        cannot exceed it (whatever it holds: `body` passes it unread as well)."""
        return length < self.max_rows

    def whole(self, content_type: str) -> bool:
        """Rows are counted in JSON answers (the statement's LIMIT caps the others)."""
        return "json" in content_type.lower()

    def _exceeded(self) -> ProxyError:
        return ProxyError(ErrorCode.MAX_ROWS_EXCEEDED, f"result has more than {self.max_rows} rows")

    def body(self, data: bytes, content_type: str) -> bytes:
        form = _FORMS.get(content_type)
        if form is None:
            form = _form(content_type)
            if len(_FORMS) < 256:  # upstreams send a handful of types
                _FORMS[content_type] = form
        if form == "other":
            return data
        if form == "lines":
            return self._lines(data)
        if data.count(b",") < self.max_rows:
            return data  # n rows are n-1 commas at least: this answer cannot be over the cap
        try:
            payload = loads(data)
        except ValueError:
            # SECURITY: an answer the cap cannot count is not passed on uncounted.
            raise FilterRefused((self.name,), "unreadable", "JSON result does not parse") from None
        capped, exceeded = cap_rows(payload, self.max_rows, self.on_excess)  # type: ignore[arg-type]
        if not exceeded:
            return data
        if self.on_excess == "deny":
            raise self._exceeded()
        return dumps(capped, data)

    def _lines(self, data: bytes) -> bytes:
        """JSON lines: a row per non-blank line."""
        if data.count(b"\n") < self.max_rows:
            return data  # at most max_rows lines
        lines = data.splitlines(keepends=True)
        rows = [i for i, line in enumerate(lines) if line.strip()]
        if len(rows) <= self.max_rows:
            return data
        if self.on_excess == "deny":
            raise self._exceeded()
        return b"".join(lines[: rows[self.max_rows]])

    def event(self, data: bytes, parsed: object = None) -> bytes | None:
        return data

    def passes(self, data: bytes) -> bool:
        return True
