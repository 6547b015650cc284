"""Shared fixtures: a real loopback upstream, a rules builder, and a running proxy."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from proxy.app import Server, build_state
from proxy.config.load import load_rules
from proxy.reference import REFERENCE
from tests.postgres_fixture import postgres_dsn  # noqa: F401
from tests.redis_fixture import fresh_redis, redis_server, redis_url  # noqa: F401
from tests.upstream_server import UpstreamApp

REPO = Path(__file__).resolve().parent.parent
NO_SKIP = os.environ.get("CALLWARDEN_NO_SKIP") == "1"
"""Set by `.ci/run`: a test that would skip for a missing real server fails instead, so a
CI without PostgreSQL, Redis or Prometheus cannot pass by running less."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Reference mode (CALLWARDEN_REFERENCE=1) turns the caches off: tests marked
    `fast_path` assert a cache's own behaviour and are deselected, not skipped."""
    if not REFERENCE:
        return
    dropped = [i for i in items if i.get_closest_marker("fast_path") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i.get_closest_marker("fast_path") is None]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped with CALLWARDEN_NO_SKIP=1: {report.longrepr}"


class Running:
    """A started proxy: its URLs, state and a client session."""

    def __init__(self, server: Server, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.state = server.state
        self.session = session
        self.url = f"http://127.0.0.1:{server.ports['proxy']}"
        self.admin = f"http://127.0.0.1:{server.ports['admin']}"

    def metric(self, name: str, **labels: str) -> float:
        value = self.state.metrics.registry.get_sample_value(name, labels)
        return value or 0.0

    async def metric_eventually(
        self, name: str, expected: float, timeout: float = 5.0, **labels: str
    ) -> float:
        """A streamed call is recorded after its last byte left: poll briefly for it."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while (value := self.metric(name, **labels)) != expected and loop.time() < end:
            await asyncio.sleep(0.02)
        return value


@pytest.fixture
async def serve_app() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """await serve_app(app) -> "http://127.0.0.1:PORT": a real server on a free loopback
    port, stopped at teardown."""
    runners: list[web.AppRunner] = []

    async def serve(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    yield serve
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def upstream(serve_app) -> tuple[UpstreamApp, str]:
    up = UpstreamApp()
    return up, await serve_app(up.app)


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[..., Path]:
    """write_rules(routes=[...], **top) -> path of a rules file."""

    def write(routes: list[dict[str, Any]], name: str = "rules.yaml", **top: Any) -> Path:
        doc = {"version": 1, **top, "routes": routes}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write


@pytest.fixture
async def start_proxy() -> AsyncIterator[Callable[..., Any]]:
    """await start_proxy(rules_path) -> Running (stopped at teardown)."""
    started: list[Running] = []

    async def start(rules_path: Path | str) -> Running:
        state = build_state(load_rules(rules_path))
        server = Server(state, "127.0.0.1:0", "127.0.0.1:0")
        await server.start()
        session = aiohttp.ClientSession(auto_decompress=False)
        running = Running(server, session)
        started.append(running)
        return running

    yield start
    for r in started:
        await r.session.close()
        await r.server.stop(drain_s=1)
