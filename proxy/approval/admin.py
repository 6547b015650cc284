"""The approvers' side, on the admin port only: a JSON API and a small server-rendered
page (works without JavaScript). Approvers present the admin token (a reference in the
rules), their name and role; nobody decides their own call.

SECURITY: the page is a cross-site target (a browser that is logged in acts on any form
posted to it), so every POST checks the Origin, a per-session CSRF token, and the
session cookie is SameSite=Strict and HttpOnly."""

from __future__ import annotations

import hmac
import html
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.approval.decide import judge_decision
from proxy.approval.model import ApprovalRecord, Status
from proxy.approval.service import Approvals, approvals_of

_NAME = re.compile(r"[A-Za-z0-9._:@-]{1,128}\Z")
_APPROVER = re.compile(r"[A-Za-z0-9._:@/,-]{1,256}\Z")
"""An approver's name; may spell a caller identity (tenant/roles), so self-approval is
caught when an approver shares a caller's identity."""
MAX_COMMENT = 1000
SESSION_S = 8 * 3600
MAX_SESSIONS = 1000
COOKIE = "cw_approver"
RECENT = 50
"""Decided approvals the page shows."""


@dataclass(frozen=True, slots=True)
class Approver:
    name: str
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class Session:
    approver: Approver
    csrf: str
    expires: float


def _roles(raw: str | None) -> frozenset[str] | None:
    if not raw:
        return None
    roles = [r.strip() for r in raw.split(",")]
    if len(raw) > 1024 or not all(_NAME.match(r) for r in roles):
        return None
    return frozenset(roles)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class ApprovalAdmin:
    def __init__(self, state: Any) -> None:
        self.state = state
        self.sessions: dict[str, Session] = {}

    @property
    def approvals(self) -> Approvals:
        return approvals_of(self.state.services, self.state.compiled.rules)

    @property
    def spec(self) -> Any:
        return self.state.compiled.rules.approval

    async def _token_ok(self, presented: str) -> bool | None:
        """True/False, or None when no admin token is configured (nobody may decide)."""
        template = self.spec.admin_token
        if template is None:
            return None
        try:
            expected = await self.state.services.secrets.resolve(template)
        except Exception:  # an unresolvable reference: fail closed, say nothing of it
            return False
        return bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())

    async def _api_approver(self, req: web.Request) -> Approver | web.Response:
        auth = req.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        ok = await self._token_ok(token) if scheme.lower() == "bearer" and token else False
        if not ok:
            verified = await self._verified(token) if scheme.lower() == "bearer" else None
            if verified is not None:
                return verified
        if ok is None and self.state.compiled.rules.identity.jwt is None:
            return _error(403, "approvals are off: set approval.admin_token in the rules")
        if not ok:
            return _error(401, "admin token or verified identity token missing or wrong")
        name = req.headers.get(self.spec.approver_header, "")
        roles = _roles(req.headers.get(self.spec.role_header))
        if not _APPROVER.match(name) or roles is None:
            return _error(
                401, f"{self.spec.approver_header} and {self.spec.role_header} are required"
            )
        return Approver(name, roles)

    async def _verified(self, token: str) -> Approver | None:
        """An approver from a token the rules' `identity.jwt` verifies: name = `sub`,
        roles = the token's roles (no header can add any)."""
        rules = self.state.compiled.rules
        if rules.identity.jwt is None or not token:
            return None
        from proxy.compile import jwt_verifier
        from proxy.identity.jwt import TokenRefused

        try:
            verified = await jwt_verifier(rules, self.state.services).verify(token)
        except TokenRefused:
            return None
        sub = verified.claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 256 or not sub.isprintable():
            return None
        return Approver(sub, frozenset(verified.roles))

    # -- JSON API ---------------------------------------------------------------------

    async def list_api(self, req: web.Request) -> web.Response:
        who = await self._api_approver(req)
        if isinstance(who, web.Response):
            return who
        records = await self.approvals.expire_due()
        status = req.query.get("status")
        if status is not None:
            records = [r for r in records if str(r.status) == status]
        records.sort(key=lambda r: r.created, reverse=True)
        return web.json_response({"approvals": [r.to_json() for r in records]})

    async def get_api(self, req: web.Request) -> web.Response:
        who = await self._api_approver(req)
        if isinstance(who, web.Response):
            return who
        await self.approvals.expire_due()
        rec = await self.approvals.store.get(req.match_info["id"])
        if rec is None:
            return _error(404, "no such approval")
        return web.json_response(rec.to_json())

    async def decide_api(self, req: web.Request) -> web.Response:
        who = await self._api_approver(req)
        if isinstance(who, web.Response):
            return who
        comment = None
        if req.can_read_body:
            try:
                body = await req.json()
            except ValueError:
                return _error(400, 'body must be JSON: {"comment": "..."}')
            comment = body.get("comment") if isinstance(body, dict) else None
            if comment is not None and not isinstance(comment, str):
                return _error(400, "comment must be a string")
        status, rec = await self._decide(
            req.match_info["id"], req.match_info["action"], who, comment
        )
        if rec is None:
            return _error(status, status_text(status))
        if isinstance(rec, str):
            return _error(status, rec)
        return web.json_response(rec.to_json())

    async def _decide(
        self, approval_id: str, action: str, who: Approver, comment: str | None
    ) -> tuple[int, ApprovalRecord | str | None]:
        if comment is not None:
            comment = comment.strip()[:MAX_COMMENT] or None
        status = Status.APPROVED if action == "approve" else Status.DENIED
        approvals = self.approvals
        await approvals.expire_due()
        rec = await approvals.store.get(approval_id)
        problem = judge_decision(rec, who.name, who.roles, approvals.clock())
        if problem is not None:
            code = 404 if rec is None else 403 if "approver" in problem else 409
            return code, problem
        decided = await approvals.decide(approval_id, status, who.name, comment)
        if decided is None:  # decided by someone else in between (another replica)
            return 409, "already decided"
        return 200, decided

    # -- the page ---------------------------------------------------------------------

    def _session(self, req: web.Request) -> Session | None:
        sid = req.cookies.get(COOKIE)
        session = self.sessions.get(sid) if sid else None
        if session is None or session.expires < time.time():
            return None
        return session

    @staticmethod
    def _same_origin(req: web.Request) -> bool:
        """SECURITY: a POST from a browser carries Origin; it must be this admin page's."""
        origin = req.headers.get("Origin")
        if origin is not None:
            return origin == f"{req.scheme}://{req.host}"
        site = req.headers.get("Sec-Fetch-Site")
        return site in (None, "same-origin", "none")

    async def ui(self, req: web.Request) -> web.Response:
        session = self._session(req)
        if session is None:
            return _page(LOGIN_FORM, status=200)
        records = await self.approvals.expire_due()
        pending = sorted(
            (r for r in records if r.status is Status.PENDING), key=lambda r: r.created
        )
        decided = sorted(
            (r for r in records if r.status is not Status.PENDING),
            key=lambda r: r.decided_at or r.created,
            reverse=True,
        )[:RECENT]
        return _page(_listing(session, pending, decided))

    async def ui_login(self, req: web.Request) -> web.Response:
        if not self._same_origin(req):
            return _page("<p>Refused: cross-site request.</p>", status=403)
        form = await req.post()
        ok = await self._token_ok(str(form.get("token", "")))
        name = str(form.get("name", ""))
        roles = _roles(str(form.get("roles", "")))
        if not ok or not _APPROVER.match(name) or roles is None:
            return _page("<p>Sign-in refused.</p>" + LOGIN_FORM, status=401)
        self._prune()
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(
            Approver(name, roles), secrets.token_urlsafe(32), time.time() + SESSION_S
        )
        resp = web.HTTPSeeOther("/approvals/ui")
        resp.set_cookie(
            COOKIE, sid, httponly=True, samesite="Strict", path="/approvals", max_age=SESSION_S
        )
        return resp

    async def ui_decide(self, req: web.Request) -> web.Response:
        session = self._session(req)
        if not self._same_origin(req) or session is None:
            return _page("<p>Refused: cross-site request or no session.</p>", status=403)
        form = await req.post()
        if not hmac.compare_digest(str(form.get("csrf", "")).encode(), session.csrf.encode()):
            return _page("<p>Refused: the form's CSRF token does not match.</p>", status=403)
        action = str(form.get("action", ""))
        if action not in ("approve", "deny"):
            return _page("<p>Unknown action.</p>", status=400)
        comment = str(form.get("comment", "")) or None
        status, rec = await self._decide(str(form.get("id", "")), action, session.approver, comment)
        if isinstance(rec, str) or rec is None:
            return _page(f"<p>Not decided: {html.escape(str(rec))}.</p>", status=status)
        return web.HTTPSeeOther("/approvals/ui")

    def _prune(self) -> None:
        now = time.time()
        for sid in [s for s, v in self.sessions.items() if v.expires < now]:
            del self.sessions[sid]
        while len(self.sessions) >= MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))


def status_text(status: int) -> str:
    return {404: "no such approval"}.get(status, "refused")


LOGIN_FORM = """<h1>CallWarden approvals</h1>
<form method="post" action="/approvals/ui/login">
<label>Admin token <input type="password" name="token" autocomplete="off" required></label>
<label>Your name <input name="name" required></label>
<label>Your roles <input name="roles" placeholder="on-call" required></label>
<button type="submit">Sign in</button></form>"""


def _ts(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value)) if value else "-"


def _listing(session: Session, pending: list[ApprovalRecord], decided: list[ApprovalRecord]) -> str:
    e = html.escape
    csrf = e(session.csrf)
    rows = []
    for r in pending:
        forms = "".join(
            f'<form method="post" action="/approvals/ui/decide">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            f'<input type="hidden" name="id" value="{e(r.id)}">'
            f'<input type="hidden" name="action" value="{action}">'
            f'<input name="comment" placeholder="comment">'
            f'<button type="submit">{action.capitalize()}</button></form>'
            for action in ("approve", "deny")
        )
        rows.append(
            f"<tr><td>{e(r.id)}</td><td>{e(r.route)}</td><td>{e(r.tool or r.method)}</td>"
            f"<td>{e(r.tenant or '-')}</td><td>{e(r.caller)}</td>"
            f"<td><pre>{e(r.arguments)}</pre></td><td>{_ts(r.expires)}</td><td>{forms}</td></tr>"
        )
    recent = [
        f"<tr><td>{e(r.id)}</td><td>{e(r.route)}</td><td>{e(r.tool or r.method)}</td>"
        f"<td>{e(str(r.status))}</td><td>{e(r.decided_by or '-')}</td>"
        f"<td>{e(r.comment or '')}</td><td>{_ts(r.decided_at)}</td></tr>"
        for r in decided
    ]
    head = "<tr><th>id</th><th>route</th><th>tool</th>"
    return (
        f"<h1>CallWarden approvals</h1><p>Signed in as {e(session.approver.name)}"
        f" ({e(', '.join(sorted(session.approver.roles)))}).</p>"
        f"<h2>Pending ({len(pending)})</h2><table>{head}<th>tenant</th><th>caller</th>"
        f"<th>arguments (masked)</th><th>expires</th><th>decide</th></tr>{''.join(rows)}</table>"
        f"<h2>Recent decisions</h2><table>{head}<th>result</th><th>by</th><th>comment</th>"
        f"<th>at</th></tr>{''.join(recent)}</table>"
    )


def _page(body: str, status: int = 200) -> web.Response:
    doc = (
        "<!doctype html><html><head><meta charset='utf-8'><title>CallWarden approvals</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}pre{margin:0;"
        "max-width:40em;white-space:pre-wrap}</style></head><body>"
        f"{body}</body></html>"
    )
    resp = web.Response(text=doc, status=status, content_type="text/html")
    h = resp.headers
    # SECURITY: no scripts at all, no framing (clickjacking), forms post only here.
    h["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    )
    h["X-Frame-Options"] = "DENY"
    h["Cache-Control"] = "no-store"
    # same-origin, not no-referrer: under no-referrer browsers send `Origin: null` with
    # the page's own form posts, and the Origin check would refuse them.
    h["Referrer-Policy"] = "same-origin"
    return resp


def add_routes(app: web.Application, state: Any) -> None:
    admin = ApprovalAdmin(state)
    app.router.add_get("/approvals", admin.list_api)
    app.router.add_get("/approvals/ui", admin.ui)
    app.router.add_post("/approvals/ui/login", admin.ui_login)
    app.router.add_post("/approvals/ui/decide", admin.ui_decide)
    app.router.add_get("/approvals/{id}", admin.get_api)
    app.router.add_post("/approvals/{id}/{action:approve|deny}", admin.decide_api)
