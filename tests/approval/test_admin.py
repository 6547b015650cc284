"""The approvals page on the admin port: sign-in, listing with masked arguments,
approve through the form, and the cross-site protections (Origin, CSRF token, cookie)."""

from __future__ import annotations

import re

import aiohttp

from tests.approval.conftest import TOKEN, TOP
from tests.approval.test_guard_e2e import route, send


async def signed_in(px) -> aiohttp.ClientSession:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    s = aiohttp.ClientSession(cookie_jar=jar)
    form = {"token": TOKEN, "name": "alice", "roles": "on-call"}
    async with s.post(px.admin + "/approvals/ui/login", data=form, allow_redirects=False) as r:
        assert r.status == 303
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return s


async def page(s: aiohttp.ClientSession, px) -> str:
    async with s.get(px.admin + "/approvals/ui") as r:
        assert r.status == 200
        assert "script-src" not in r.headers["Content-Security-Policy"]  # no scripts at all
        assert r.headers["X-Frame-Options"] == "DENY"
        return await r.text()


async def test_page_lists_and_approves_with_csrf(upstream, admin_token, write_rules, start_proxy):
    _, url = upstream
    rules = write_rules([route(url, mode="defer")], environment="development", **TOP)
    px = await start_proxy(rules)
    _, _, body = await send(px, "/billing/refund", {"order": 7, "password": "hunter2"})
    approval_id = body["error"]["approval_id"]
    s = await signed_in(px)
    try:
        html = await page(s, px)
        assert approval_id in html and "hunter2" not in html and "order" in html
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        form = {"csrf": csrf, "id": approval_id, "action": "approve", "comment": "fine"}
        decide = px.admin + "/approvals/ui/decide"
        # another site's form: refused by Origin, whatever it carries
        evil = {"Origin": "http://evil.example"}
        async with s.post(decide, data=form, headers=evil, allow_redirects=False) as r:
            assert r.status == 403
        # same origin, wrong token: refused
        bad = {**form, "csrf": "x" * len(csrf)}
        async with s.post(decide, data=bad, allow_redirects=False) as r:
            assert r.status == 403
        # no session cookie: refused
        async with (
            aiohttp.ClientSession() as bare,
            bare.post(decide, data=form, allow_redirects=False) as r,
        ):
            assert r.status == 403
        assert "Approve" in await page(s, px)  # still pending
        origin = {"Origin": px.admin}
        async with s.post(decide, data=form, headers=origin, allow_redirects=False) as r:
            assert r.status == 303
        html = await page(s, px)
        assert "Pending (0)" in html and "approved" in html and "fine" in html
    finally:
        await s.close()
    retry = {"X-CallWarden-Approval": approval_id}
    status, _, _ = await send(px, "/billing/refund", {"order": 7, "password": "hunter2"}, **retry)
    assert status == 200


async def test_page_needs_sign_in(upstream, admin_token, write_rules, start_proxy):
    _, url = upstream
    px = await start_proxy(write_rules([route(url, mode="defer")], **TOP))
    async with px.session.get(px.admin + "/approvals/ui") as r:
        text = await r.text()
        assert "Sign in" in text and "apr_" not in text
    form = {"token": "wrong", "name": "alice", "roles": "on-call"}
    async with px.session.post(px.admin + "/approvals/ui/login", data=form) as r:
        assert r.status == 401 and "Set-Cookie" not in r.headers
    async with px.session.get(px.url + "/approvals/ui") as r:  # never on the proxy port
        assert r.status == 403
