"""Holds one MCP server to its pinned tool definitions, per route, for the process.

Every `tools/list` result goes through `filter_tools` (servers can change mid-session, so
each list is checked, not only the first); every `tools/call` through `check_call`. The
latest definition seen per pinned tool is remembered, so a call is judged by what the
server last advertised. Decisions are the pure functions at the top; the class keeps the
per-process state, the compiled validators and the counters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema.protocols import Validator

from proxy.integrity.arguments import argument_problem, compile_validator, schema_problem
from proxy.integrity.pins import PinFile, PinnedTool, tool_digest
from proxy.model.errors import ErrorCode
from proxy.model.verdict import Deny

log = logging.getLogger("callwarden.integrity")

Status = Literal["ok", "changed", "unpinned"]
OnChange = Literal["block", "warn"]
OTHER_TOOL = "other"
"""Metrics label for names no pin bounds (the server or the caller chose them)."""
CHANGED_REASON = "tool definition changed"
_MAX_UNPINNED_NOTES = 256


def definition_status(pin: PinnedTool | None, digest: str) -> Status:
    if pin is None:
        return "unpinned"
    return "ok" if pin.digest == digest else "changed"


def listed(status: Status, on_change: OnChange) -> bool:
    """Whether a tool with this status stays in `tools/list`."""
    return status == "ok" or (status == "changed" and on_change == "warn")


def call_refusal(status: Status | None, on_change: OnChange, name: str) -> Deny | None:
    """`status` is None for a pinned tool no `tools/list` has shown yet: its pin stands."""
    if status == "unpinned":
        return Deny(ErrorCode.POLICY_DENY, f"tool '{name[:64]}' is not pinned on this route")
    if status == "changed" and on_change == "block":
        return Deny(ErrorCode.POLICY_DENY, CHANGED_REASON)
    return None


@dataclass(frozen=True, slots=True)
class Seen:
    digest: str
    status: Status
    definition: dict[str, Any]


class IntegrityMonitor:
    """The object compiled routes carry as `extra["integrity"]`."""

    def __init__(
        self,
        route: str,
        pins: PinFile,
        on_change: OnChange = "block",
        metrics: Any = None,
        *,
        audit: bool = False,
    ) -> None:
        self.route = route
        self.pins = pins
        self.on_change: OnChange = on_change
        self.audit = audit
        """Audit mode never blocks: tools/list keeps every tool, events are still noted
        (calls are refused by verdict, which the pipeline turns into "would deny")."""
        self._metrics = metrics
        self._children: dict[tuple[str, str], Any] = {}
        self._seen: dict[str, Seen] = {}
        self._unpinned_noted: set[tuple[str, str]] = set()
        # Built once here, so a call costs one dict lookup before validation proper.
        self._validators: dict[str, Validator] = {}
        for name, pin in pins.tools.items():
            schema = pin.input_schema
            if schema is not None:
                if (problem := schema_problem(schema)) is not None:
                    raise ValueError(f"pinned tool '{name}': inputSchema {problem}")
                self._validators[name] = compile_validator(schema)
        self._learned: dict[str, tuple[str, Validator]] = {}
        """Validators from a live definition matching a digest-only pin, by digest."""

    # -- tools/list ------------------------------------------------------------------------
    def filter_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tools callers may see; notes every definition that differs from its pin."""
        kept: list[dict[str, Any]] = []
        for tool in tools:
            name = tool.get("name") if isinstance(tool, dict) else None
            if not isinstance(name, str):
                continue  # SECURITY: malformed entries are dropped, never passed through
            digest = tool_digest(tool)
            status = definition_status(self.pins.tools.get(name), digest)
            if status == "unpinned":
                self._note_unpinned(name, digest)
            else:
                previous = self._seen.get(name)
                if previous is None or previous.digest != digest:
                    self._seen[name] = Seen(digest, status, tool)
                    if status == "changed":
                        self._note_changed(name)
            if self.audit or listed(status, self.on_change):
                kept.append(tool)
        return kept

    def status(self, name: str) -> Status | None:
        """What the latest `tools/list` said about `name` (None: not listed yet)."""
        if name not in self.pins.tools:
            return "unpinned"
        seen = self._seen.get(name)
        return seen.status if seen is not None else None

    # -- tools/call ------------------------------------------------------------------------
    def check_call(self, tool_name: str, arguments: Any) -> Deny | None:
        status = self.status(tool_name)
        refusal = call_refusal(status, self.on_change, tool_name)
        if refusal is not None:
            self._count(tool_name if status != "unpinned" else OTHER_TOOL, "refused")
            return refusal
        validator = self._validator(tool_name)
        if validator is None:
            return None
        if arguments is None:
            arguments = {}  # MCP: arguments may be omitted
        problem = argument_problem(validator, arguments)
        if problem is None:
            return None
        self._count(tool_name, "schema_failure")
        return Deny(ErrorCode.INVALID_PARAMS, problem)

    def _validator(self, name: str) -> Validator | None:
        found = self._validators.get(name)
        if found is not None:
            return found
        seen = self._seen.get(name)
        if seen is None or seen.status != "ok":
            return None
        # A digest-only pin: the live schema matched the approved digest, so it is the
        # approved schema. Compile it once per digest.
        learned = self._learned.get(name)
        if learned is not None and learned[0] == seen.digest:
            return learned[1]
        schema = seen.definition.get("inputSchema")
        if schema is None or schema_problem(schema) is not None:
            return None
        validator = compile_validator(schema)
        self._learned[name] = (seen.digest, validator)
        return validator

    # -- observation -----------------------------------------------------------------------
    def _note_changed(self, name: str) -> None:
        action = "hidden and its calls refused" if self.on_change == "block" else "passed (warn)"
        log.warning(
            "route %s: tool '%s' definition differs from its pin: %s", self.route, name, action
        )
        self._count(name, "changed")

    def _note_unpinned(self, name: str, digest: str) -> None:
        key = (name[:64], digest)
        if key in self._unpinned_noted:
            return
        if len(self._unpinned_noted) < _MAX_UNPINNED_NOTES:
            self._unpinned_noted.add(key)
        # %r: the server chose this name; it must not forge log lines
        log.warning("route %s: unpinned tool %r hidden", self.route, name[:64])
        self._count(OTHER_TOOL, "unpinned")

    def _count(self, tool: str, event: str) -> None:
        if self._metrics is None:
            return
        child = self._children.get((tool, event))
        if child is None:
            child = self._metrics.tool_integrity.labels(self.route, tool, event)
            self._children[(tool, event)] = child
        child.inc()
