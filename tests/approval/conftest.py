"""Approval tests: a local webhook receiver and an approver client for the admin port."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

TOKEN = "adm-" + "k3y" * 8
TOKEN_ENV = "CW_TEST_APPROVAL_TOKEN"


class Hooks:
    """Receives webhook POSTs on 127.0.0.1 (generic JSON and Slack-compatible)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, Any]] = []
        self.arrived = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/{kind}", self.receive)

    async def receive(self, req: web.Request) -> web.Response:
        self.bodies.append((req.match_info["kind"], await req.json()))
        self.arrived.set()
        return web.Response(text="ok")

    async def next(self, timeout: float = 5.0) -> tuple[str, Any]:
        async with asyncio.timeout(timeout):
            while not self.bodies:
                self.arrived.clear()
                await self.arrived.wait()
        return self.bodies.pop(0)


@pytest.fixture
async def hooks(serve_app) -> tuple[Hooks, str]:
    h = Hooks()
    return h, await serve_app(h.app)


@pytest.fixture
def admin_token(monkeypatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return TOKEN


TOP = {"approval": {"admin_token": "${env:" + TOKEN_ENV + "}"}}


def approver_headers(name: str = "alice", roles: str = "on-call", token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}", "X-Approver": name, "X-Approver-Role": roles}


async def decide(
    px: Any, approval_id: str, action: str = "approve", comment: str | None = None, **who: str
) -> tuple[int, Any]:
    body = {"comment": comment} if comment is not None else None
    async with px.session.post(
        f"{px.admin}/approvals/{approval_id}/{action}", json=body, headers=approver_headers(**who)
    ) as r:
        return r.status, await r.json()


async def pending_id(px: Any, timeout: float = 5.0) -> str:
    """The id of the one pending approval, once it exists."""
    async with asyncio.timeout(timeout):
        while True:
            async with px.session.get(
                px.admin + "/approvals?status=pending", headers=approver_headers()
            ) as r:
                items = (await r.json())["approvals"]
            if items:
                return items[0]["id"]
            await asyncio.sleep(0.02)
