"""MCP per-tool policy: which caller may call which tool or method, tenant-pinned and
SQL-carrying arguments, per-tool timeouts, and the tools/list filter that shows each caller
only the tools it may call. Hiding is not enforcement: every tools/call is judged again.

Batches: each element is judged on its own; if any element is refused, nothing is sent
and every request of the batch is answered with a JSON-RPC error (its own code for the
refused ones, TOOL_BAD_REQUEST "not sent" for the others) -- see codecs/mcp.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from proxy.compile import GUARD_BUILDERS, Services
from proxy.conditions.activation import CREDENTIAL_HEADERS, Facts, evaluate, hidden_headers
from proxy.config.schema import McpSpec, Route, Rules
from proxy.guards.base import CallContext, FilterRefused
from proxy.guards.sql_safety import SqlScope, sql_engine
from proxy.mcp.policy import McpPolicy, with_arguments
from proxy.mcp.sse import SseEvent, SseParser
from proxy.model.call import JsonRpcMessage, McpCall, ToolCall, evolve
from proxy.model.errors import ErrorCode
from proxy.model.jsonio import dumps, loads, repeats_a_key
from proxy.model.verdict import ALLOW, Deny, Rewrite, Verdict
from proxy.sql.engine import SqlGuard

MAX_HINTS = 1024
"""Tools whose annotations we remember per route (a hostile server cannot grow it)."""
DENIALS = "mcp_denials"
"""ctx.scratch key: {message index: Deny} when a batch element was refused."""


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
        if self.runtime.integrity is not None:
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
                ctx.scratch[DENIALS] = denials
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
            verdict = evaluate(when, call, ctx.scratch, self._facts(name, args))
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


def runtime_for(spec: McpSpec | None) -> McpRuntime:
    return McpRuntime(McpPolicy.from_spec(spec or McpSpec()))


def build(route: Route, rules: Rules, services: Services) -> McpPolicyGuard | None:
    if route.kind != "mcp":
        return None
    runtime = McpRuntime(McpPolicy.from_spec(route.mcp or McpSpec(), route.name))
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


GUARD_BUILDERS["mcp_policy"] = build
