"""The MCP engine's tools/list filter: shows each caller only the tools it may call (after
the tool-integrity monitor's filter), with the per-route state it shares with the MCP
codec and the mcp_policy guard (policy, learnt annotations, remembered answers). Hiding
is not enforcement: every tools/call is judged again by the mcp_policy guard."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from proxy.config.schema import McpSpec
from proxy.guards.base import FilterRefused
from proxy.mcp.policy import McpPolicy
from proxy.mcp.sse import SseEvent, SseParser
from proxy.model.jsonio import dumps, loads, repeats_a_key
from proxy.reference import REFERENCE

MAX_HINTS = 1024
"""Tools whose annotations we remember per route (a hostile server cannot grow it)."""


@dataclass(slots=True)
class McpRuntime:
    """Per-route state the MCP codec and guard share: the compiled policy, annotations
    learnt from the server's tools/list (for retry safety), and the tool-integrity
    monitor when the route has one (`route.extra["integrity"]`, bound by the codec)."""

    policy: McpPolicy
    hints: dict[str, dict[str, Any]] = field(default_factory=dict)
    integrity: Any = None
    """IntegrityMonitor: `filter_tools` runs in the tools/list filter."""
    check_calls: bool = False
    """Also ask `integrity.check_call` here (only when no `integrity` guard is in the chain,
    so a call is never judged and counted twice)."""
    lists: dict[tuple[frozenset[str], str], str | None] = field(default_factory=dict)
    """Filtered tools/list answers by (roles, text after the id); None: unchanged. See
    ToolsListFilter._remembered."""

    def learn(self, tools: list[Any]) -> None:
        for t in tools:
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                continue
            name = t["name"]
            if name not in self.hints and len(self.hints) >= MAX_HINTS:
                continue
            ann = t.get("annotations")
            ann = ann if isinstance(ann, dict) else {}
            self.hints[name] = {
                "readOnlyHint": ann.get("readOnlyHint"),
                "idempotentHint": ann.get("idempotentHint"),
            }

    def idempotent(self, name: Any) -> bool:
        return isinstance(name, str) and self.policy.tool_is_idempotent(name, self.hints.get(name))


MAX_REMEMBERED = 256 * 1024
"""tools/list answers longer than this are worked out every time."""
MAX_REMEMBERED_LISTS = 64
_LIST_HEAD = re.compile(r'\{"jsonrpc":"2\.0","id":(0|[1-9][0-9]{0,15}|"[A-Za-z0-9_.:-]{1,64}"),')
_MISSING: Any = object()
_UNCHANGED: Any = object()


def _id_of(token: str) -> int | str:
    return token[1:-1] if token.startswith('"') else int(token)


def _may_list(data: bytes) -> bool:
    """`data` may hold a "tools" key. SECURITY: a server can spell the key with \\u
    escapes ("\\u0074ools" is "tools" to every JSON parser), the only other way to."""
    return b'"tools"' in data or b"\\u" in data


def _unreadable(what: str) -> FilterRefused:
    return FilterRefused(("tools_list",), "unreadable", what)


@dataclass(frozen=True, slots=True)
class ToolsListFilter:
    """Response filter for a POST that carried tools/list: keeps only the caller's tools
    (integrity filter first, then policy), everything else byte for byte.

    SECURITY: it fails closed. Every message of the answer that carries a tools list is
    filtered, whatever its id (a server answering `"1"` to request 1, or listing tools in
    a notification before the answer, is read as a client would read it), and an answer
    that may hold a "tools" key but cannot be read as JSON (or as one event) is refused
    (FilterRefused), whatever content type it claims."""

    runtime: McpRuntime
    roles: frozenset[str]

    def body(self, data: bytes, content_type: str) -> bytes:
        if not _may_list(data):
            return data  # no tools key in any spelling: nothing a client could list
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _unreadable("a tools/list answer that is not UTF-8") from None
        hit = self._remembered(text)
        if hit is not None:
            return data if hit is _UNCHANGED else hit.encode()
        try:
            doc = loads(data)
        except ValueError:
            raise _unreadable("a tools/list answer that is not one JSON document") from None
        out = self._doc(doc, data)
        new = None if out is None else dumps(out, data)
        self._remember(text, doc, None if new is None else new.decode())
        return data if new is None else new

    def passes(self, data: bytes) -> bool:
        return not _may_list(data)  # as event's fast path: absent from all, from each

    def event(self, data: bytes, parsed: SseEvent | None = None) -> bytes | None:
        if not _may_list(data):
            return data  # fast path: progress, notifications, tools/call results
        if parsed is not None and parsed.raw is data:
            ev = parsed
        else:
            parser = SseParser(None)
            events = parser.feed(data)
            tail, rest = parser.finish()
            events += tail
            if len(events) != 1 or rest:
                raise _unreadable("an event of a tools/list answer that is not one event")
            ev = events[0]
        if ev.data is None:
            return data  # no data field: a client reads nothing from it
        text = ev.data
        hit = self._remembered(text)
        if hit is not None:
            return data if hit is _UNCHANGED else ev.with_data(hit).raw
        try:
            doc = loads(text)
        except ValueError:
            raise _unreadable("an event of a tools/list answer that is not JSON") from None
        out = self._doc(doc, text)
        new = None if out is None else dumps(out, text).decode()
        self._remember(text, doc, new)
        return data if new is None else ev.with_data(new).raw

    def _remembered(self, text: str) -> str | None:
        """The answer for a text seen before but for its id (servers answer every
        tools/list with the same bytes): the filtered text, _UNCHANGED, or None (work it
        out). Only a text that opens with exactly `{"jsonrpc":"2.0","id":<id>,` where <id>
        is a plain number or name qualifies, so the rest decides everything else (the
        filter does not depend on the id)."""
        if REFERENCE or self.runtime.integrity is not None:
            return None  # the integrity filter's answer depends on its state, not the text
        m = _LIST_HEAD.match(text)
        if m is None:
            return None
        filtered = self.runtime.lists.get((self.roles, text[m.end() :]), _MISSING)
        if filtered is _MISSING:
            return None
        if filtered is None:
            return _UNCHANGED  # what the full path does for it too (no repeated key)
        return m.group(0) + filtered

    def _remember(self, text: str, doc: Any, new: str | None) -> None:
        """Keep the answer (`new`, None when unchanged) for texts `_remembered` can use."""
        if self.runtime.integrity is not None or len(text) > MAX_REMEMBERED:
            return
        m = _LIST_HEAD.match(text)
        if m is None or not isinstance(doc, dict) or list(doc)[:2] != ["jsonrpc", "id"]:
            return
        if doc["id"] != _id_of(m.group(1)):
            return
        if repeats_a_key(text, doc):
            return  # a text read differently by different parsers: never taken as seen
        filtered: str | None = None
        if new is not None:
            if not new.startswith(m.group(0)):
                return
            filtered = new[m.end() :]
        lists = self.runtime.lists
        if len(lists) >= MAX_REMEMBERED_LISTS:
            lists.clear()
        lists[(self.roles, text[m.end() :])] = filtered

    def _doc(self, doc: Any, text: bytes | str) -> Any:
        """The new document, or None to forward `text` as it came. SECURITY: the filter
        reads the last copy of a repeated key; forwarded as sent, a client that reads
        the first copy would see tools it may not call. Such a text is re-encoded."""
        if isinstance(doc, list):
            new = [self._message(m) for m in doc]
            if all(n is None for n in new):
                return doc if repeats_a_key(text, doc) else None
            return [m if n is None else n for m, n in zip(doc, new, strict=True)]
        out = self._message(doc)
        return doc if out is None and repeats_a_key(text, doc) else out

    def _message(self, msg: Any) -> dict[str, Any] | None:
        """The message with only the caller's tools, or None when unchanged. A response's
        `result.tools` and a notification's `params.tools` are both lists a client may
        show; anything else is not a tools list."""
        if not isinstance(msg, dict):
            return None
        if "method" in msg:
            if "id" in msg:
                return None  # a request to the client (sampling's tools are its own)
            key = "params"
        else:
            key = "result"
        body = msg.get(key)
        if not isinstance(body, dict) or not isinstance(body.get("tools"), list):
            return None
        tools = body["tools"]
        if key == "result":
            self.runtime.learn(tools)
        changed = False
        if self.runtime.integrity is not None:
            kept = self.runtime.integrity.filter_tools(tools)
            if kept is not tools and kept != tools:
                body, changed = {**body, "tools": kept}, True
        filtered = self.runtime.policy.visible_tools(body, self.roles)
        if filtered is not body or changed:
            return {**msg, key: filtered}
        return None


def runtime_for(spec: McpSpec | None, route: str = "") -> McpRuntime:
    """`route`: names the route in condition errors (`routes[NAME].mcp.tools.T.when`)."""
    return McpRuntime(McpPolicy.from_spec(spec or McpSpec(), route))
