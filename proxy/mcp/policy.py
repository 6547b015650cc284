"""Per-tool MCP policy, compiled once from `McpSpec`: which caller may call which tool,
which tools `tools/list` shows them, which calls may be retried, and which arguments are
pinned to the tenant or carry SQL. Hiding a tool is not enforcement: `tool_decision` is
asked again for every `tools/call`. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from proxy.config.schema import McpSpec, PartialLimits, SqlSpec
from proxy.model.errors import ErrorCode

OTHER_TOOL = "other"
"""Metrics label for tools the rules do not name (bounded cardinality)."""


@dataclass(frozen=True, slots=True)
class ToolRule:
    roles: frozenset[str]
    limits: PartialLimits | None = None
    sql: SqlSpec | None = None
    tenant_argument: str | None = None
    idempotent: bool = False
    when: Any = None
    """proxy.conditions.cel.Condition: `when` over the call's tool and arguments."""

    def admits(self, roles: frozenset[str]) -> bool:
        return "*" in self.roles or not self.roles.isdisjoint(roles)


@dataclass(frozen=True, slots=True)
class McpPolicy:
    default_allow: bool
    tools: MappingProxyType[str, ToolRule]
    methods: MappingProxyType[str, frozenset[str]]

    @classmethod
    def from_spec(cls, spec: McpSpec, route: str = "") -> McpPolicy:
        from proxy.conditions.cel import Condition

        tools = {
            name: ToolRule(
                frozenset(t.roles), t.limits, t.sql, t.tenant_argument, t.idempotent,
                Condition.build(f"routes[{route}].mcp.tools.{name}.when", t.when, "tool")
                if t.when is not None else None,
            )
            for name, t in spec.tools.items()
        }
        methods = {m: frozenset(r) for m, r in spec.methods.items()}
        return cls(spec.default == "allow", MappingProxyType(tools), MappingProxyType(methods))

    def tool_decision(self, name: Any, roles: frozenset[str]) -> tuple[bool, ErrorCode | None, str]:
        """(allowed, code, reason) for calling tool `name` with these roles."""
        if not isinstance(name, str) or not name:
            return False, ErrorCode.INVALID_PARAMS, "tools/call needs params.name (a string)"
        rule = self.tools.get(name)
        if rule is None:
            if self.default_allow:
                return True, None, ""
            return False, ErrorCode.POLICY_DENY, f"tool '{name[:64]}' is not allowed on this route"
        if not rule.admits(roles):
            return False, ErrorCode.PERMISSION_DENIED, f"role not allowed to call tool '{name}'"
        return True, None, ""

    def method_decision(
        self, method: str, roles: frozenset[str]
    ) -> tuple[bool, ErrorCode | None, str]:
        """Roles per JSON-RPC method from `mcp.methods`; unlisted methods pass."""
        allowed = self.methods.get(method)
        if allowed is None or "*" in allowed or not allowed.isdisjoint(roles):
            return True, None, ""
        return False, ErrorCode.PERMISSION_DENIED, f"role not allowed to use {method}"

    def visible_tools(self, result: dict[str, Any], roles: frozenset[str]) -> dict[str, Any]:
        """A `tools/list` result with only the tools this caller may call; every other key
        (nextCursor, _meta, ...) kept. Returns `result` itself when nothing is hidden."""
        tools = result.get("tools")
        if not isinstance(tools, list):
            return result
        kept = [
            t for t in tools if isinstance(t, dict) and self.tool_decision(t.get("name"), roles)[0]
        ]
        if len(kept) == len(tools):
            return result
        return {**result, "tools": kept}

    def tool_is_idempotent(self, name: str, annotations: Any = None) -> bool:
        """Safe to retry: declared in rules, or advertised by the server as read-only or
        idempotent (hints from the server's own tools/list)."""
        rule = self.tools.get(name)
        if rule is not None and rule.idempotent:
            return True
        if isinstance(annotations, dict):
            return annotations.get("readOnlyHint") is True or (
                annotations.get("idempotentHint") is True
            )
        return False

    def tool_label(self, name: Any) -> str:
        return name if isinstance(name, str) and name in self.tools else OTHER_TOOL

    def tool_limits(self, name: str) -> PartialLimits | None:
        rule = self.tools.get(name)
        return rule.limits if rule else None

    def sql_argument(self, name: str) -> tuple[str, SqlSpec] | None:
        """(argument name, SQL policy) when this tool carries SQL for the SQL guard."""
        rule = self.tools.get(name)
        if rule is None or rule.sql is None:
            return None
        return rule.sql.argument or "query", rule.sql

    def pin_tenant(
        self, name: str, arguments: Any, tenant: str | None
    ) -> tuple[ErrorCode | None, str, dict[str, Any] | None]:
        """Apply the tool's `tenant_argument`: (code, reason, new arguments or None when
        unchanged). Absent: set to the caller's tenant; different: TENANT_MISMATCH."""
        rule = self.tools.get(name)
        if rule is None or rule.tenant_argument is None:
            return None, "", None
        key = rule.tenant_argument
        if tenant is None:
            return ErrorCode.AUTH_FAILED, "tenant required for this tool", None
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return ErrorCode.INVALID_PARAMS, "tool arguments must be an object", None
        if key in arguments:
            if arguments[key] != tenant:
                return (
                    ErrorCode.TENANT_MISMATCH,
                    f"argument '{key}' is not the caller's tenant",
                    None,
                )
            return None, "", None
        return None, "", {**arguments, key: tenant}


def with_arguments(message: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """A tools/call request with `params.arguments` replaced (for a rewritten call)."""
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    return {**message, "params": {**params, "arguments": arguments}}
