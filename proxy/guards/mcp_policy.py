"""MCP per-tool policy: which caller may call which tool or method, tenant-pinned and
SQL-carrying arguments, per-tool timeouts; a tools/list request gets the MCP engine's
filter (proxy/mcp/tools_list.py) that shows each caller only the tools it may call.
Hiding is not enforcement: every tools/call is judged again.

Batches: each element is judged on its own; if any element is refused, nothing is sent
and every request of the batch is answered with a JSON-RPC error (its own code for the
refused ones, TOOL_BAD_REQUEST "not sent" for the others) -- see codecs/mcp.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.conditions.activation import CREDENTIAL_HEADERS, Facts, evaluate, hidden_headers
from proxy.config.schema import Route, Rules
from proxy.guards.base import CallContext
from proxy.guards.sql_safety import SqlScope, sql_engine
from proxy.mcp.policy import with_arguments
from proxy.mcp.tools_list import McpRuntime, ToolsListFilter, runtime_for
from proxy.model.call import JsonRpcMessage, McpCall, ToolCall, evolve
from proxy.model.errors import ErrorCode
from proxy.model.jsonio import dumps
from proxy.model.verdict import ALLOW, Deny, Rewrite, Verdict
from proxy.services import Services
from proxy.sql.engine import SqlGuard


@dataclass(frozen=True, slots=True)
class McpPolicyGuard:
    runtime: McpRuntime
    sql: dict[str, tuple[str, SqlGuard, SqlScope | None]]
    """tool -> (argument, SqlGuard, its allow_tables / when)."""
    audit: bool = False
    """In audit mode tools/list is not filtered either: audit changes nothing it sends."""
    hidden: frozenset[str] = CREDENTIAL_HEADERS
    """Headers `request.headers` leaves out of a condition's view."""
    name: str = "mcp_policy"

    def _facts(self, name: str, args: Any) -> Facts:
        return Facts(name, args, self.runtime.hints.get(name), hidden_headers=self.hidden)

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not isinstance(call, McpCall) or not call.messages:
            return ALLOW  # GET streams, DELETE session end
        denials: dict[int, Deny] = {}
        rewritten: dict[int, dict[str, Any]] = {}
        list_ids: list[Any] = []
        for i, msg in enumerate(call.messages):
            if msg.method is None:
                continue  # client responses (to the server's own requests) pass
            # SECURITY: a notification is judged like a request: a server may act on a
            # `tools/call` sent without an id (it only owes no answer).
            if msg.method == "tools/list" and msg.id is not None:
                list_ids.append(msg.id)
            out = self._judge(msg, call, ctx)
            if isinstance(out, Deny):
                denials[i] = out
            elif out is not None:
                rewritten[i] = out
        if denials:
            first_i, first = next(iter(denials.items()))
            if call.batch:
                ctx.mcp_denials = denials
                reason = f"batch[{first_i}]: {first.reason}"
                return Deny(first.code, reason, first.retry_after_s, first.headers)
            return first
        if list_ids and not self.audit:
            ctx.response_filters.append(
                ToolsListFilter(self.runtime, call.caller.roles)
            )
        if not rewritten:
            return ALLOW
        msgs = tuple(
            JsonRpcMessage(m.id, m.method, rewritten[i]["params"], rewritten[i])
            if i in rewritten
            else m
            for i, m in enumerate(call.messages)
        )
        doc: Any = [m.raw for m in msgs] if call.batch else msgs[0].raw
        body = dumps(doc, call.request.body or b"")
        return Rewrite(evolve(call, messages=msgs, json=doc, rewritten_body=body), "arguments")

    def _judge(
        self, msg: JsonRpcMessage, call: McpCall, ctx: CallContext
    ) -> Deny | dict[str, Any] | None:
        """Deny, the rewritten message, or None (allowed unchanged)."""
        policy = self.runtime.policy
        roles = call.caller.roles
        if msg.method != "tools/call":
            ok, code, reason = policy.method_decision(msg.method or "", roles)
            return None if ok else Deny(code or ErrorCode.PERMISSION_DENIED, reason)
        params = msg.params if isinstance(msg.params, dict) else {}
        name = params.get("name")
        ok, code, reason = policy.tool_decision(name, roles)
        if not ok:
            return Deny(code or ErrorCode.POLICY_DENY, reason)
        args = params.get("arguments")
        integrity = self.runtime.integrity
        if integrity is not None and self.runtime.check_calls:
            refused = integrity.check_call(name, args)
            if refused is not None:
                return refused  # type: ignore[no-any-return]
        tenant = call.caller.tenant
        code, reason, pinned = policy.pin_tenant(name, args, tenant)
        if code is not None:
            return Deny(code, reason)
        changed = pinned is not None
        args = pinned if pinned is not None else args
        sql = self.sql.get(name)
        if sql is not None:
            out = _judge_sql(sql, args, call, ctx, self._facts(name, args))
            if isinstance(out, Deny):
                return out
            if out is not None:
                args, changed = out, True
        rule = policy.tools.get(name)
        when = rule.when if rule is not None else None
        if when is not None:
            # Judged on the arguments as they will be sent (tenant pinned, SQL rewritten).
            verdict = evaluate(when, call, ctx.conditions_seen, self._facts(name, args))
            if not verdict.holds:
                return Deny(ErrorCode.POLICY_DENY, when.denial(verdict))
        limits = policy.tool_limits(name)
        if limits is not None and limits.timeout_ms is not None:
            ctx.deadline = ctx.deadline.tightened(limits.timeout_ms / 1000)
        return with_arguments(msg.raw, args) if changed else None


def _judge_sql(
    sql: tuple[str, SqlGuard, SqlScope | None], args: Any, call: McpCall, ctx: CallContext,
    facts: Facts,
) -> Deny | dict[str, Any] | None:
    """Run the SQL guard on the tool's SQL argument: Deny, new arguments, or None."""
    arg, guard, scope = sql
    text = args.get(arg) if isinstance(args, dict) else None
    if not isinstance(text, str):
        return Deny(ErrorCode.INVALID_PARAMS, f"argument '{arg}' must be a string of SQL")
    decision = guard.judge(text, call.caller.tenant)
    if decision.code is not None:
        return Deny(decision.code, decision.reason)
    if scope is not None:
        denied = scope.judge(call, decision, ctx, facts)
        if denied is not None:
            return denied
    if decision.rewritten:
        return {**args, arg: decision.sql}
    return None


def build(route: Route, rules: Rules, services: Services) -> McpPolicyGuard | None:
    if route.kind != "mcp":
        return None
    runtime = runtime_for(route.mcp, route.name)
    hidden = hidden_headers(rules)
    sql: dict[str, tuple[str, SqlGuard, SqlScope | None]] = {}
    for tool in runtime.policy.tools:
        found = runtime.policy.sql_argument(tool)
        if found is not None:
            arg, spec = found
            scope = SqlScope.build(spec, f"routes[{route.name}].mcp.tools.{tool}.sql", hidden)
            sql[tool] = (arg, sql_engine(spec, services), scope)
    mode = route.guard_modes.get("mcp_policy") or route.mode or rules.mode
    return McpPolicyGuard(runtime, sql, audit=mode == "audit", hidden=hidden)

