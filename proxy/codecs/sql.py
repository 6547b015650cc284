"""SQL over HTTP: find the statement where the route says (JSON pointer, query
parameter, raw body, or an API preset), hand the guards a typed SqlCall, put the
rewritten SQL back in the same place. Row caps on results are the SQL engine's filter
(proxy/sql/rows.py: RowCapFilter), added by the tenant_scope guard."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from multidict import MultiDict, MultiDictProxy

from proxy.codecs.http import HttpCodec
from proxy.config.schema import Route, SqlSpec
from proxy.model.call import Caller, HttpCall, Request, SqlCall, ToolCall, evolve, new_call
from proxy.sql import location

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


def build(route: Route) -> SqlCodec:
    assert route.sql is not None
    return SqlCodec(route.sql)
