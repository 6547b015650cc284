"""The decision log: one JSON line per call with what a policy decision needs, so
`callwarden replay` can re-judge yesterday's traffic under new rules.

Off by default. The hot path only queues the call's record; a small writer thread masks,
caps, serialises, writes and rotates, so the event loop never waits on disk or regexes.
# SECURITY: every value that looks like a credential is masked before it is written:
# secret headers wholesale, JSON values under secret-looking keys, known token formats,
# `Bearer ...` and `password=...` inside any text. Injected secrets are never logged.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
from typing import Any

from proxy.config.schema import DecisionLogSpec
from proxy.credentials.detect import AUTH_HEADERS, COOKIE_HEADERS, KEY_HEADERS
from proxy.credentials.literals import is_reference, is_secret_key
from proxy.credentials.mask import REDACTED, Masker
from proxy.guards.identity import INVALID
from proxy.model.call import GraphCall, McpCall, SqlCall, ToolCall
from proxy.model.record import CallRecord

log = logging.getLogger("callwarden")
QUEUE_MAX = 10_000
"""Records waiting for the writer; beyond this they are dropped (and counted)."""
MASK_MARGIN = 32_768
"""Text masked past a cap, so a credential that straddles the cut is still found whole."""
SECRET_HEADERS = AUTH_HEADERS | KEY_HEADERS | COOKIE_HEADERS | {"set-cookie"}
SKIP_HEADERS = frozenset(
    {"host", "connection", "content-length", "transfer-encoding", "keep-alive", "traceparent"}
)
_FORMATS = Masker((), formats=True)
_AUTH_TEXT = re.compile(r"(?i)\b(bearer|basic|token|apikey)(\s+)([A-Za-z0-9._~+/=\-]{8,})")
_KEY_VALUE = re.compile(  # key judged in code (is_secret_key): no backtracking over keywords
    r"""\b([A-Za-z_][A-Za-z0-9_.\-]{0,63})(["']?[ \t]*[:=][ \t]*)"""
    r"""(?:"((?:[^"\\]|\\.){0,4096})"|'((?:[^'\\]|\\.){0,4096})'"""
    r"""|(\$\{[^}\s]{0,256}\}|[^\s"',;&}\])]{1,4096}))"""
)


def _kv(m: re.Match[str]) -> str:
    value = next(g for g in (m.group(3), m.group(4), m.group(5)) if g is not None)
    if not value or value.startswith(REDACTED[:-1]) or is_reference(value):
        return m.group(0)  # already masked (by a token format), or a reference
    if not is_secret_key(m.group(1)):
        return m.group(0)
    quote = '"' if m.group(3) is not None else "'" if m.group(4) is not None else ""
    return f"{m.group(1)}{m.group(2)}{quote}{REDACTED}{quote}"


def mask_text(text: str) -> str:
    """Known token formats, then `Bearer x` and `password=x` / `"token": "x"` forms."""
    text = _FORMATS.mask_text(text)[0]
    text = _AUTH_TEXT.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return _KEY_VALUE.sub(_kv, text)


MAX_LOGGED_PATH = 2048
_METHOD = re.compile(r"[A-Za-z-]{1,24}\Z")


def _capped(text: str) -> str:
    return text if len(text) <= MAX_LOGGED_PATH else text[:MAX_LOGGED_PATH] + "..."


def log_path(path: str) -> str:
    """A path (or host) as logs show it: credential-looking parts masked (a token
    format, `key=value` with a secret-looking key), capped. SECURITY: the path is logged
    for every call, refused ones included, and a caller may put a token in it."""
    path = _capped(path)
    if "=" in path or ":" in path or " " in path or not _FORMATS.clean(path):
        return mask_text(path)
    return path


def log_text(text: str) -> str:
    """A refusal reason (which may quote a caller's name, e.g. a tool's) as logs show
    it: token formats masked, capped. Prose is left readable."""
    text = _capped(text)
    return text if _FORMATS.clean(text) else _FORMATS.mask_text(text)[0]


def log_method(method: str) -> str:
    """A method name, or a marker: a method is any token to HTTP, a credential too."""
    return method if _METHOD.match(method) else INVALID


def mask_json(node: Any, depth: int = 0) -> Any:
    """JSON with values under secret-looking keys redacted and every string masked."""
    if depth > 64:
        return REDACTED
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            secret = is_secret_key(str(k)) and isinstance(v, (str, int, float))
            keep = isinstance(v, str) and is_reference(v)
            out[k] = REDACTED if secret and not keep else mask_json(v, depth + 1)
        return out
    if isinstance(node, list):
        return [mask_json(v, depth + 1) for v in node]
    if isinstance(node, str):
        return mask_text(node)
    return node


def mask_headers(headers: Any, skip: frozenset[str] = frozenset()) -> list[list[str]]:
    """`skip`: lower-case names left out (the identity headers, logged validated)."""
    out = []
    for name, value in headers.items():
        low = name.lower()
        if low in SKIP_HEADERS or low in skip:
            continue
        secret = low in SECRET_HEADERS or is_secret_key(name)
        out.append([name, REDACTED if secret and not is_reference(value) else mask_text(value)])
    return out


def cap(text: str, limit: int) -> tuple[str, bool]:
    """Masked text is cut after masking, so half a token is never written."""
    return (text, False) if len(text) <= limit else (text[:limit], True)


def body_text(body: bytes, content_type: str, limit: int | None = None) -> str:
    """Masked text of a body. With `limit`, a big body is masked only up to a margin past
    the cap (the rest is cut anyway); a token can then only be cut *after* masking."""
    text = body.decode("utf-8", "replace")
    if limit is not None and len(text) > limit + MASK_MARGIN:
        return mask_text(text[: limit + MASK_MARGIN])
    if "json" in content_type.lower():
        try:
            return json.dumps(mask_json(json.loads(text)), ensure_ascii=False)
        except ValueError:
            pass
    return mask_text(text)


def call_fields(call: ToolCall, limit: int) -> dict[str, Any]:
    """The decoded statement(s) or MCP arguments, masked and capped."""
    if isinstance(call, SqlCall):
        return {"sql": cap(mask_text(call.sql), limit)[0]}
    if isinstance(call, GraphCall):
        return {
            "statements": [
                {"text": cap(mask_text(s.text), limit)[0], "parameters": mask_json(s.parameters)}
                for s in call.statements
            ]
        }
    if isinstance(call, McpCall):
        return {"mcp": [{"method": m.method, "params": mask_json(m.params)} for m in call.messages]}
    return {}


def rewrite_fields(call: ToolCall | None, final: ToolCall | None, limit: int) -> dict[str, Any]:
    """What the guards changed (SQL or body). Never headers or query: the secrets guard
    puts injected credentials there."""
    if call is None or final is None or final is call:
        return {}
    out: dict[str, Any] = {}
    if isinstance(final, SqlCall) and isinstance(call, SqlCall) and final.sql != call.sql:
        out["rewritten_sql"] = cap(mask_text(final.sql), limit)[0]
    elif final.rewritten_body is not None and final.rewritten_body != call.rewritten_body:
        ctype = call.request.headers.get("Content-Type", "")
        out["rewritten_body"] = cap(body_text(final.rewritten_body, ctype, limit), limit)[0]
    return out


def verdict_of(rec: CallRecord) -> str:
    """allow: the guards passed (even if the upstream then failed); deny: a policy said no."""
    di = rec.decision_input or {}
    if di.get("final") is not None:
        return "allow"
    return "deny" if rec.outcome == "denied" else "error"


def decision_line(rec: CallRecord, ts: float, limit: int) -> dict[str, Any]:
    """The JSON-ready decision record for one call (pure, apart from masking)."""
    di = rec.decision_input or {}
    request = di.get("request")
    call, final = di.get("call"), di.get("final")
    # SECURITY: the tenant and role headers are written only as the validated `tenant`
    # and `role` fields (replay reads those); a value the pipeline refused is not kept.
    identity = frozenset(h.lower() for h in di.get("identity_headers", ()))
    host = di.get("host")
    line: dict[str, Any] = {
        "v": 1,
        "time": round(ts, 3),
        "trace_id": rec.trace_id,
        "route": rec.route or None,
        "kind": rec.kind or None,
        "method": log_method(rec.method),
        "host": log_path(host) if host else host,
        "path": log_path(rec.path),
        "query": mask_text(di.get("query") or "") or None,
        "headers": mask_headers(di["headers"], identity) if "headers" in di else [],
        "tenant": rec.tenant,
        "role": rec.roles,
        "tool": rec.tool_name or rec.tool,
    }
    if request is not None and request.body is not None:
        ctype = request.headers.get("Content-Type", "")
        text, cut = cap(body_text(request.body, ctype, limit), limit)
        line["body"] = text
        if cut:
            line["body_truncated"] = True
    if call is not None:
        line.update(call_fields(call, limit))
        if call.caller.claims is not None:
            # The verified token's claims (never the token), so replay can judge `when`
            # conditions over identity.claims again.
            line["claims"] = mask_json(dict(call.caller.claims))
    line.update(
        verdict=verdict_of(rec),
        outcome=rec.outcome,
        code=rec.error_code or None,
        reason=log_text(rec.reason) if rec.reason else None,
        guard=rec.guard or None,
        would_deny=[{"guard": g, "code": c, "reason": log_text(r)} for g, c, r in rec.would_deny],
        rewritten=rec.rewritten,
        status=rec.status,
    )
    line.update(rewrite_fields(call, final, limit))
    if rec.approval is not None:
        a = rec.approval
        line["approval"] = {
            "id": a.id,
            "status": str(a.status),
            "approver": a.decided_by,
            "comment": log_text(a.comment) if a.comment else None,
            "decision_s": round(a.decided_at - a.created, 3) if a.decided_at else None,
        }
    return line


class DecisionLog:
    """Queue on the event loop, write on a thread; rotate by size keeping `backups`."""

    def __init__(self, spec: DecisionLogSpec) -> None:
        assert spec.path is not None
        self.spec = spec
        self.path = spec.path
        self.dropped = 0
        self._q: queue.Queue[tuple[float, CallRecord] | None] = queue.Queue(QUEUE_MAX)
        self._file = self._open()
        self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self._thread.start()

    def _open(self) -> Any:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the log
        self._size = f.tell()
        return f

    def submit(self, rec: CallRecord) -> None:
        """Cheap, never blocks: a full queue drops the record and counts it. Calls that
        did not pass through the HTTP pipeline (e.g. the Postgres listener) carry no
        decision input and are not logged: replay could not rebuild them."""
        if rec.decision_input is None:
            return
        try:
            self._q.put_nowait((time.time(), rec))
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("decision log behind: %d records dropped so far", self.dropped)

    def _run(self) -> None:
        limit = self.spec.max_body_bytes
        while True:
            item = self._q.get()
            try:
                if item is None:
                    self._file.close()
                    return
                try:
                    data = json.dumps(decision_line(item[1], item[0], limit), default=str)
                    self._write(data + "\n")
                except Exception as exc:  # one bad record must not stop the log
                    log.error("decision log: record not written: %s", exc.__class__.__name__)
                if self._q.empty():
                    self._file.flush()
            finally:
                self._q.task_done()

    def _write(self, line: str) -> None:
        self._file.write(line)
        self._size += len(line.encode("utf-8"))
        if self._size >= self.spec.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        n = self.spec.backups
        if n == 0:
            os.remove(self.path)
        else:
            for i in range(n - 1, 0, -1):
                if os.path.exists(f"{self.path}.{i}"):
                    os.replace(f"{self.path}.{i}", f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._file = self._open()

    def flush(self) -> None:
        """Wait until every queued record is on disk (blocking: call off the loop)."""
        self._q.join()

    def close(self, wait: bool = True) -> None:
        """Write what is queued, then close; `wait=False` returns at once (reload path)."""
        if not self._thread.is_alive():
            return
        try:
            self._q.put(None, timeout=5)
        except queue.Full:
            log.error("decision log: writer stuck, closing without the queued records")
            return
        if wait:
            self._thread.join(timeout=10)
