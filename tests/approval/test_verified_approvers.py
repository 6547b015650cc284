"""With `identity.jwt` in the rules, approvers may sign API calls with a verified token:
their name is its `sub`, their roles its roles; the caller's own token cannot approve
its call."""

from __future__ import annotations

from pathlib import Path

from tests.approval.test_guard_e2e import route
from tests.identity.keys import AUDIENCE, ISSUER, SigningKey, jwks

KEY = SigningKey.make("k1", "ES256")


async def test_token_approvers(tmp_path: Path, upstream, write_rules, start_proxy):
    _, url = upstream
    keys = tmp_path / "jwks.json"
    keys.write_bytes(jwks(KEY))
    ident = {"jwt": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks_file": str(keys)}}
    px = await start_proxy(write_rules([route(url, mode="defer")], identity=ident))
    agent = KEY.sign({"sub": "bot-7", "roles": ["agent", "on-call"], "tenant": "acme"})
    async with px.session.post(
        px.url + "/billing/refund", json={"order": 7}, headers={"Authorization": f"Bearer {agent}"}
    ) as r:
        assert r.status == 428, await r.text()
        approval_id = (await r.json())["error"]["approval_id"]

    async def approve(token: str) -> int:
        async with px.session.post(
            f"{px.admin}/approvals/{approval_id}/approve",
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            approve.last = await r.json()  # type: ignore[attr-defined]
            return r.status

    # the caller (bot-7) holds on-call too, yet cannot approve its own call
    assert await approve(agent) == 403 and "own call" in approve.last["error"]  # type: ignore[attr-defined]
    assert await approve(KEY.sign({"sub": "dev-1", "roles": ["dev"]})) == 403  # not on-call
    other = SigningKey.make("k2", "ES256")
    assert await approve(other.sign({"sub": "eve", "roles": ["on-call"]})) == 401  # unknown key
    assert await approve(KEY.sign({"sub": "dana", "roles": ["on-call"]})) == 200
