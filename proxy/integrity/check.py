"""Publication checks for pin files, as for any tool asset (`callwarden validate`):
errors refuse the rules, warnings are printed and let them pass."""

from __future__ import annotations

from proxy.config.schema import Rules
from proxy.integrity.arguments import schema_problem
from proxy.integrity.pins import PinError, PinFile, load_pins, tool_digest


def pin_file_problems(pins: PinFile, where: str, route: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) for one parsed pin file."""
    errors: list[str] = []
    warnings: list[str] = []
    if pins.route is not None and pins.route != route:
        errors.append(f"{where}: route: pins are for route '{pins.route}', not '{route}'")
    for name, pin in pins.tools.items():
        for key in ("inputSchema", "outputSchema"):
            if key in pin.text and (problem := schema_problem(pin.text[key])) is not None:
                errors.append(f"{where}: tools.{name}.{key}: {problem}")
        if not (pin.description or "").strip():
            warnings.append(f"{where}: tools.{name}: pinned without a description")
        if pin.has_full_text and tool_digest(pin.text) != pin.digest:
            warnings.append(
                f"{where}: tools.{name}: pinned text does not match its digest (edited by"
                " hand?): the digest decides drift, the pinned inputSchema validates calls"
            )
    return errors, warnings


def pin_problems(rules: Rules) -> tuple[list[str], list[str]]:
    """(errors, warnings) over every MCP route's pin file."""
    errors: list[str] = []
    warnings: list[str] = []
    for route in rules.routes:
        if route.mcp is None or route.mcp.pins is None:
            continue
        try:
            pins = load_pins(route.mcp.pins)
        except PinError as exc:
            errors.extend(exc.problems)
            continue
        e, w = pin_file_problems(pins, route.mcp.pins, route.name)
        errors.extend(e)
        warnings.extend(w)
    return errors, warnings
