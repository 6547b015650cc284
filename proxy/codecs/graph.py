"""The graph codec: Neo4j HTTP (`neo4j-tx`, `neo4j-query`) and Gremlin Server HTTP
(`gremlin-http`) requests decoded into a `GraphCall` of statements for graph_safety.

Endpoints the route's API does not have are refused (deny by default): a path the codec
cannot read is a path the guard cannot judge. encode sends the original bytes unless the
guard rewrote a statement (its `rewritten_body`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.codecs.http import HttpCodec, bad_json, duplicate_key
from proxy.config.schema import GraphSpec, Route
from proxy.graph import neo4j
from proxy.model.call import Caller, GraphCall, Request
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.jsonio import DuplicateKeyError, loads_unique

if TYPE_CHECKING:
    from proxy.compile import CompiledRoute


class GraphCodec(HttpCodec):
    kind = "graph"

    def __init__(self, spec: Route) -> None:
        self.graph: GraphSpec = spec.graph or GraphSpec()

    def wants_body(self, route: CompiledRoute, method: str, headers: object) -> bool:
        return method == "POST"

    def decode(self, route: CompiledRoute, request: Request, caller: Caller) -> GraphCall:
        api = self.graph.api
        where = neo4j.endpoint(api, request.method, request.path)
        if where is neo4j.Endpoint.UNKNOWN:
            what = f"{request.method} {request.path[:128]}"
            raise ProxyError(ErrorCode.POLICY_DENY, f"{what} is not a {api} endpoint")
        if where is neo4j.Endpoint.NO_STATEMENTS:
            return GraphCall(route.name, route.kind, caller, request, language=self.graph.language)
        body = None
        if request.body:
            try:
                body = loads_unique(request.body)  # forwarded as sent: one reading only
            except DuplicateKeyError:
                raise duplicate_key() from None
            except (ValueError, UnicodeDecodeError):
                raise bad_json() from None
        statements = tuple(neo4j.decode(api, body))
        return GraphCall(
            route.name,
            route.kind,
            caller,
            request,
            json=body,
            language=self.graph.language,
            statements=statements,
        )

