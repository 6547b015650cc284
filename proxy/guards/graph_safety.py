"""Query safety for graph routes: every Cypher statement or Gremlin script is judged
(write/admin clauses and steps, unknown procedures, functions and steps refused on
read-only routes; on tenant routes the tenant parameter pinned and every node pattern or
traversal step proven constrained by it, else refused; outer LIMIT enforced); rewrites go
out as a re-encoded body, everything else byte for byte.
A blocked graph query is SQL_BLOCKED (the query-safety code, whatever the language)."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.conditions.activation import NO_FACTS, Facts, evaluate, hidden_headers
from proxy.conditions.cel import Condition
from proxy.config.schema import Route, Rules
from proxy.graph import neo4j
from proxy.graph.cypher import judge_cypher
from proxy.graph.gremlin import judge_gremlin
from proxy.graph.policy import GraphDecision, GraphPolicy
from proxy.guards.base import CallContext
from proxy.model.call import GraphCall, GraphStatement, Request, ToolCall, evolve
from proxy.model.errors import ErrorCode
from proxy.model.jsonio import dumps
from proxy.model.verdict import ALLOW, Deny, Rewrite, Verdict
from proxy.services import Services


def judge(policy: GraphPolicy, s: GraphStatement, tenant: str | None) -> GraphDecision:
    if policy.language == "gremlin":
        return judge_gremlin(s.text, policy, bindings=s.parameters, tenant=tenant)
    return judge_cypher(s.text, policy, parameters=s.parameters, tenant=tenant)


def repeatable(api: str, request: Request) -> bool:
    """Would sending this request twice be harmless, given its statements only read?
    Opening a Neo4j transaction (`POST .../tx`) leaves server state: not repeatable."""
    if api == "neo4j-tx":
        return request.path.rstrip("/").endswith("/commit")
    return "/tx" not in request.path if api == "neo4j-query" else True


@dataclass(frozen=True, slots=True)
class GraphSafetyGuard:
    policy: GraphPolicy
    when: Condition | None = None
    """`graph.when`: CEL over request, identity and time, on every call with statements."""
    facts: Facts = NO_FACTS
    name: str = "graph_safety"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not isinstance(call, GraphCall) or not call.statements:
            return ALLOW  # commit / rollback of an open transaction, discovery
        when = self.when
        if when is not None:
            out = evaluate(when, call, ctx.conditions_seen, self.facts)
            if not out.holds:
                return Deny(ErrorCode.POLICY_DENY, when.denial(out))
        policy = self.policy
        out: list[GraphStatement] = []
        changed = False
        for i, s in enumerate(call.statements):
            d = judge(policy, s, call.caller.tenant)
            if d.code is not None:
                where = f"statement {i}: " if len(call.statements) > 1 else ""
                return Deny(d.code, where + d.reason)
            changed = changed or d.rewritten
            out.append(GraphStatement(d.statement, d.parameters) if d.rewritten else s)
        api = policy.api
        # Defence in depth: neo4j-query read-only routes also ask the server for Read mode.
        force_read = (
            api == "neo4j-query"
            and policy.read_only
            and not (isinstance(call.json, dict) and call.json.get("accessMode") == "Read")
        )
        idempotent = policy.read_only and repeatable(api, call.request)
        if not changed and not force_read:
            return ALLOW if call.idempotent == idempotent else Rewrite(
                evolve(call, idempotent=idempotent), "idempotent"
            )
        doc = neo4j.encode(api, call.json, out, read_only=policy.read_only)
        body = dumps(doc, call.request.body or b"")
        new = evolve(
            call, statements=tuple(out), json=doc, rewritten_body=body, idempotent=idempotent
        )
        return Rewrite(new, "graph rewrite")


def build(route: Route, rules: Rules, services: Services) -> GraphSafetyGuard | None:
    if route.kind != "graph" or route.graph is None:
        return None
    spec = route.graph
    when = None
    if spec.when is not None:
        when = Condition.build(f"routes[{route.name}].graph.when", spec.when, "graph")
    return GraphSafetyGuard(GraphPolicy.from_spec(spec), when,
                            Facts(hidden_headers=hidden_headers(rules)))

