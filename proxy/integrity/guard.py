"""The `integrity` guard: refuses `tools/call` for tools whose definition drifted from its
pin, unpinned tools, and arguments outside the pinned input schema. It also hands its
monitor to the compiled route (`extra["integrity"]`) for the MCP `tools/list` filter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.guards.base import CallContext
from proxy.integrity.monitor import IntegrityMonitor
from proxy.integrity.pins import PinError, load_pins
from proxy.model.call import McpCall, ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict

if TYPE_CHECKING:
    from proxy.config.schema import Route, Rules
    from proxy.services import Services


@dataclass(frozen=True, slots=True)
class IntegrityGuard:
    monitor: IntegrityMonitor
    name: str = "integrity"

    @property
    def extra(self) -> dict[str, Any]:
        """Merged into CompiledRoute.extra by compile_route."""
        return {"integrity": self.monitor}

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not isinstance(call, McpCall):
            return ALLOW
        for message in call.messages:
            if message.method != "tools/call":
                continue
            params = message.params if isinstance(message.params, dict) else {}
            name = params.get("name")
            if not isinstance(name, str) or not name:
                return Deny(ErrorCode.INVALID_PARAMS, "tools/call needs params.name (a string)")
            deny = self.monitor.check_call(name, params.get("arguments"))
            if deny is not None:
                return deny
        return ALLOW


def build(route: Route, rules: Rules, services: Services) -> IntegrityGuard | None:
    """Only MCP routes with `mcp.pins`. A missing or bad pin file fails the load: a route
    that promised pinned tools never runs without them."""
    if route.kind != "mcp" or route.mcp is None or route.mcp.pins is None:
        return None
    try:
        pins = load_pins(route.mcp.pins)
    except PinError as exc:
        raise ValueError(f"route '{route.name}': {'; '.join(exc.problems)}") from None
    if pins.route is not None and pins.route != route.name:
        raise ValueError(
            f"route '{route.name}': pin file {route.mcp.pins} is for route '{pins.route}'"
        )
    try:
        mode = route.guard_modes.get("integrity") or route.mode or rules.mode
        monitor = IntegrityMonitor(
            route.name, pins, route.mcp.on_change, services.metrics, audit=mode == "audit"
        )
    except ValueError as exc:
        raise ValueError(f"route '{route.name}': {route.mcp.pins}: {exc}") from None
    return IntegrityGuard(monitor)

