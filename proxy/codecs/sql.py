"""SQL over HTTP: find the statement where the route says (JSON pointer, query
parameter, raw body, or an API preset), hand the guards a typed SqlCall, put the
rewritten SQL back in the same place, and cap the rows of JSON results."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from multidict import MultiDict, MultiDictProxy

from proxy.codecs.http import HttpCodec
from proxy.compile import CODECS
from proxy.config.schema import Route, SqlSpec
from proxy.guards.base import FilterRefused
from proxy.model.call import Caller, HttpCall, Request, SqlCall, ToolCall, evolve, new_call
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.jsonio import dumps, loads
from proxy.sql import location
from proxy.sql.rows import cap_rows

if TYPE_CHECKING:
    from proxy.compile import CompiledRoute


class SqlCodec(HttpCodec):
    kind = "sql"
    always_buffer = True

    def __init__(self, spec: SqlSpec) -> None:
        self.spec = spec
        self.where = location.where(spec.location)

    def decode(self, route: CompiledRoute, request: Request, caller: Caller) -> ToolCall:
        where = self.where
        if not location.carries_sql(where, request.method, request.path):
            # Result polling and cancel requests of Trino/Snowflake/Databricks: no SQL.
            return HttpCall(route.name, route.kind, caller, request)
        doc = None
        if request.body and where.kind == "json":
            doc = location.json_body(request.body)  # decoded once: guards read call.json
        sql, params = location.extract(where, request.query, request.body, doc)
        return new_call(SqlCall, route=route.name, kind=route.kind, caller=caller,
                        request=request, json=doc, sql=sql, params=params)


def with_sql(where: location.Where, call: SqlCall, new_sql: str, statement_kind: str,
             idempotent: bool) -> SqlCall:
    """The call with its SQL replaced where it was found (and the statement's kind and
    idempotence set), everything else unchanged."""
    req = call.request
    pairs, body = location.replace(where, req.query, req.body, new_sql, call.json)
    if pairs is not None:
        query = MultiDictProxy(MultiDict(pairs))
        req = evolve(req, query_string=urlencode(pairs), query=query)
        return evolve(call, request=req, sql=new_sql, statement_kind=statement_kind,
                      idempotent=idempotent)
    return evolve(call, sql=new_sql, rewritten_body=body, statement_kind=statement_kind,
                  idempotent=idempotent)


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


def _factory(route: Route) -> SqlCodec:
    assert route.sql is not None
    return SqlCodec(route.sql)


CODECS["sql"] = _factory
