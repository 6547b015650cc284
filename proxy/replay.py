"""Dry runs: judge a call under some rules without sending it (`explain`), and re-judge a
decision log under candidate rules, reporting what would change (`replay`).

Both run the route's real codec and guard chain through `pipeline.run_guards`, so audit
modes and rewrites behave exactly as in `run`. Guards with side effects or state are left
out of a dry run: `ratelimit` (a replayed burst would spend quota no real call spent) and
`secrets` (it would fetch secrets to inject into a call that is never sent).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.compile import CompiledRoute, CompiledRules, Services, compile_rules
from proxy.conditions.activation import Seen
from proxy.config.load import LoadedRules
from proxy.guards.base import CallContext
from proxy.model.call import Caller, Request
from proxy.model.deadline import make_deadline
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.record import CallRecord
from proxy.observe.decision_log import rewrite_fields
from proxy.pipeline import parse_roles, run_guards

SKIP_GUARDS = frozenset({"ratelimit", "secrets", "approval"})
"""Left out of dry runs: they count, inject or hold (approval: a dry run says who would
have to approve instead, `Judgement.approval`)."""
CATEGORIES = ("newly_denied", "newly_allowed", "rewritten_differently", "code_changed")


@dataclass(slots=True)
class Judgement:
    verdict: str
    """allow | deny"""
    route: str | None
    code: str | None = None
    reason: str | None = None
    guard: str | None = None
    would_deny: list[dict[str, str]] = field(default_factory=list)
    rewrite: dict[str, Any] = field(default_factory=dict)
    """rewritten_sql / rewritten_body, masked as the decision log masks them."""
    conditions: list[dict[str, Any]] = field(default_factory=list)
    """Each `when` evaluated: rule, expression, the values it read, whether it held."""
    approval: str | None = None
    """Who must approve this call before it goes out, when the route holds it."""


def dry_compile(loaded: LoadedRules) -> CompiledRules:
    """Compile as `run` would, with collaborators that are never started (no I/O)."""
    from proxy.observe.metrics import Metrics
    from proxy.secrets.store import SecretStore

    services = Services(metrics=Metrics(), secrets=SecretStore(loaded.rules.secrets))
    return compile_rules(loaded, services)


async def judge(
    compiled: CompiledRules,
    route: CompiledRoute,
    request: Request,
    caller: Caller,
    cap: int = 1 << 20,
) -> Judgement:
    rec = CallRecord(start=time.monotonic(), method=request.method)
    chain = tuple(g for g in route.chain if g.name not in SKIP_GUARDS)
    dry = dataclasses.replace(route, chain=chain)
    deadline = make_deadline(rec.start, route.timeout_s, None, None)
    ctx = CallContext(deadline, rec, compiled.rules.environment)
    seen: list[Seen] = []
    ctx.conditions_seen = seen
    wants = route.codec.wants_body(route, request.method, request.headers)
    if request.body is not None and not wants:
        request = dataclasses.replace(request, body=None)  # as `run` would: streamed unread
    call = None
    try:
        call = route.codec.decode(route, request, caller)
        final = await run_guards(dry, call, ctx)
    except ProxyError as err:
        guard = rec.guard or ("decode" if call is None else None)
        return Judgement("deny", route.name, str(err.code), err.message, guard, _would(rec),
                         conditions=[s.as_dict() for s in seen])
    except Exception as exc:  # a guard bug: reported as such, never as a policy change
        return Judgement("error", route.name, str(ErrorCode.INTERNAL_ERROR),
                         exc.__class__.__name__)
    held = next((g.would_hold(final, ctx) for g in route.chain if g.name == "approval"), None)
    return Judgement("allow", route.name, would_deny=_would(rec),
                     rewrite=rewrite_fields(call, final, cap),
                     conditions=[s.as_dict() for s in seen], approval=held)


def _would(rec: CallRecord) -> list[dict[str, str]]:
    return [{"guard": g, "code": c, "reason": r} for g, c, r in rec.would_deny]


def make_request(
    method: str, path: str, query: str, headers: Iterable[tuple[str, str]], body: bytes | None
) -> Request:
    hdrs: CIMultiDict[str] = CIMultiDict(headers)
    if body is not None:
        hdrs["Content-Length"] = str(len(body))
    q = MultiDictProxy(MultiDict(parse_qsl(query, keep_blank_values=True)))
    return Request(method, path, query, q, CIMultiDictProxy(hdrs), body)


async def rejudge(compiled: CompiledRules, old: dict[str, Any], cap: int) -> Judgement | None:
    """One decision-log record under `compiled`; None when it cannot be replayed."""
    if old.get("body_truncated") or old.get("verdict") not in ("allow", "deny"):
        return None
    found = compiled.table.match(old.get("host"), old.get("path") or "/")
    if found is None:
        return Judgement("deny", None, str(ErrorCode.POLICY_DENY), "no route matches", "routing")
    route, upstream_path = found
    ident = compiled.identity
    own = {ident.tenant_header.lower(), ident.role_header.lower()}
    headers = [(k, v) for k, v in old.get("headers") or () if k.lower() not in own]
    if old.get("tenant"):
        headers.append((ident.tenant_header, old["tenant"]))
    if old.get("role"):
        headers.append((ident.role_header, old["role"]))
    body = old["body"].encode() if old.get("body") is not None else None
    request = make_request(old.get("method") or "GET", upstream_path, old.get("query") or "",
                           headers, body)
    claims = old.get("claims")
    caller = Caller(old.get("tenant"), parse_roles(old.get("role")), old.get("trace_id") or "",
                    "", MappingProxyType(claims) if isinstance(claims, dict) else None)
    new = await judge(compiled, route, request, caller, cap)
    skipped = old.get("guard")
    if old["verdict"] == "deny" and skipped in SKIP_GUARDS and new.verdict == "allow" and any(
        g.name == skipped for g in route.chain
    ):
        # A dry run leaves rate limits and secret injection out, so it cannot say whether
        # they would refuse again: while the route still has that guard, the refusal
        # stands (it is not "newly allowed" by rules that did not change it).
        return Judgement("deny", route.name, old.get("code"), old.get("reason"), skipped)
    if old["verdict"] == "deny" and old.get("guard") == "credentials" and new.verdict == "allow":
        # The log masks the credential the caller sent, so it cannot be re-detected: the
        # refusal stands while the route still enforces a blocking credentials guard.
        guard = next((g for g in route.chain if g.name == "credentials"), None)
        if guard is not None and getattr(guard, "block", True) and (
            route.guard_mode("credentials") == "enforce"
        ):
            return Judgement("deny", route.name, old.get("code"), old.get("reason"), "credentials")
    return new


def classify(old: dict[str, Any], new: Judgement) -> tuple[str, str] | None:
    """(category, code) of a change, or None when the decision is the same."""
    was = old["verdict"]
    if was == "allow" and new.verdict == "deny":
        return "newly_denied", new.code or ""
    if was == "deny" and new.verdict == "allow":
        return "newly_allowed", old.get("code") or ""
    if was == "deny" and new.code != old.get("code"):
        return "code_changed", f"{old.get('code')} -> {new.code}"
    before = {k: old[k] for k in ("rewritten_sql", "rewritten_body") if old.get(k) is not None}
    if was == "allow" and before != new.rewrite:
        return "rewritten_differently", ""
    return None


def _example(old: dict[str, Any], new: Judgement) -> dict[str, Any]:
    ex = {k: old.get(k) for k in ("trace_id", "method", "path", "tenant", "role", "tool")}
    for k in ("sql", "statements", "mcp"):
        if old.get(k) is not None:
            ex[k] = old[k]
    ex["before"] = {k: old.get(k) for k in ("verdict", "code", "reason", "rewritten_sql",
                                            "rewritten_body") if old.get(k) is not None}
    ex["after"] = {k: v for k, v in (("verdict", new.verdict), ("code", new.code),
                                     ("reason", new.reason), *new.rewrite.items()) if v}
    return ex


def read_log(lines: Iterable[str]) -> Iterator[dict[str, Any] | None]:
    for line in lines:
        if line.strip():
            try:
                doc = json.loads(line)
            except ValueError:
                doc = None
            yield doc if isinstance(doc, dict) else None


async def replay(
    compiled: CompiledRules, records: Iterable[dict[str, Any] | None], examples: int = 3
) -> dict[str, Any]:
    """The decision diff of `records` under `compiled`, grouped by route and code."""
    cap = compiled.rules.observability.decision_log.max_body_bytes
    groups: dict[str, dict[tuple[str, str], dict[str, Any]]] = {c: {} for c in CATEGORIES}
    total = skipped = unchanged = 0
    for old in records:
        total += 1
        new = await rejudge(compiled, old, cap) if old is not None else None
        if old is None or new is None or new.verdict == "error":
            skipped += 1
            continue
        change = classify(old, new)
        if change is None:
            unchanged += 1
            continue
        category, code = change
        route = new.route or old.get("route") or ""
        g = groups[category].setdefault((route, code), {"route": route, "code": code,
                                                        "count": 0, "examples": []})
        g["count"] += 1
        if len(g["examples"]) < examples:
            g["examples"].append(_example(old, new))
    out: dict[str, Any] = {"rules_digest": compiled.loaded.digest, "total": total,
                           "skipped": skipped, "unchanged": unchanged}
    for category in CATEGORIES:
        listed = sorted(groups[category].values(),
                        key=lambda g: (-g["count"], g["route"], g["code"]))
        out[category] = {"count": sum(g["count"] for g in listed), "groups": listed}
    return out


def render(report: dict[str, Any]) -> str:
    lines = [
        f"replayed {report['total']} calls under rules {report['rules_digest'][:12]}: "
        f"{report['unchanged']} unchanged, {report['skipped']} skipped"
    ]
    for category in CATEGORIES:
        part = report[category]
        lines.append(f"{category.replace('_', ' ')}: {part['count']}")
        for g in part["groups"]:
            lines.append(f"  {g['route'] or '(no route)':20} {g['code'] or '-':28} {g['count']}")
            for ex in g["examples"]:
                what = ex.get("sql") or ex.get("tool") or ""
                after = (ex["after"].get("reason") or ex["after"].get("rewritten_sql")
                         or ex["after"].get("verdict", ""))
                lines.append(f"      e.g. {ex['method']} {ex['path']} tenant={ex['tenant']} "
                             f"{what} -> {after}".rstrip())
    return "\n".join(lines)
