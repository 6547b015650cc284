"""The aiohttp handler, and nothing else: every call goes through the pipeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from proxy.pipeline import Pipeline

if TYPE_CHECKING:
    from proxy.app import ProxyState


def make_handler(state: ProxyState) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    return Pipeline(state).handle
