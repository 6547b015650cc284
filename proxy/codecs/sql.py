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
from proxy.model.call import Caller, HttpCall, Request, SqlCall, ToolCall, evolve
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
        return SqlCall(route.name, route.kind, caller, request, json=doc, sql=sql, params=params)


def with_sql(where: location.Where, call: SqlCall, new_sql: str, **changes: object) -> SqlCall:
    """The call with its SQL replaced where it was found (and `changes` applied),
    everything else unchanged."""
    req = call.request
    pairs, body = location.replace(where, req.query, req.body, new_sql, call.json)
    if pairs is not None:
        query = MultiDictProxy(MultiDict(pairs))
        req = evolve(req, query_string=urlencode(pairs), query=query)
        return evolve(call, request=req, sql=new_sql, **changes)
    return evolve(call, sql=new_sql, rewritten_body=body, **changes)


class RowCapFilter:
    """Counts rows of a JSON result: over the cap is MAX_ROWS_EXCEEDED, or a cut with a
    marker when the route says on_excess: truncate."""

    __slots__ = ("max_rows", "on_excess")

    def __init__(self, max_rows: int, on_excess: str) -> None:
        self.max_rows = max_rows
        self.on_excess = on_excess

    def body(self, data: bytes, content_type: str) -> bytes:
        if "json" not in content_type or data.count(b",") < self.max_rows:
            return data  # n rows are n-1 commas at least: this answer cannot be over the cap
        try:
            payload = loads(data)
        except ValueError:
            return data
        capped, exceeded = cap_rows(payload, self.max_rows, self.on_excess)  # type: ignore[arg-type]
        if not exceeded:
            return data
        if self.on_excess == "deny":
            raise ProxyError(
                ErrorCode.MAX_ROWS_EXCEEDED, f"result has more than {self.max_rows} rows"
            )
        return dumps(capped, data)

    def event(self, data: bytes, parsed: object = None) -> bytes | None:
        return data

    def passes(self, data: bytes) -> bool:
        return True


def _factory(route: Route) -> SqlCodec:
    assert route.sql is not None
    return SqlCodec(route.sql)


CODECS["sql"] = _factory
