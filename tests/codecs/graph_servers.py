"""Loopback servers that speak the graph HTTP shapes: Neo4j's transactional Cypher API
(`/db/{db}/tx/commit`), its Query API (`/db/{db}/query/v2`) and Gremlin Server's HTTP
endpoint. Each records what arrived, so tests can see the proxy's rewrites."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class Neo4jHttp:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.app = web.Application()
        r = self.app.router
        r.add_post("/db/{db}/tx/commit", self.commit)
        r.add_post("/db/{db}/tx", self.commit)
        r.add_post("/db/{db}/query/v2", self.query)
        r.add_get("/", self.discovery)

    async def commit(self, req: web.Request) -> web.Response:
        raw = await req.read()
        body = json.loads(raw)
        self.received.append({"path": req.path, "body": body, "raw": raw})
        results = [
            {"columns": ["statement"], "data": [{"row": [s["statement"]], "meta": [None]}]}
            for s in body.get("statements", [])
        ]
        return web.json_response({"results": results, "errors": []})

    async def query(self, req: web.Request) -> web.Response:
        body = await req.json()
        self.received.append({"path": req.path, "body": body})
        return web.json_response(
            {"data": {"fields": ["statement"], "values": [[body["statement"]]]}, "bookmarks": []}
        )

    async def discovery(self, req: web.Request) -> web.Response:
        return web.json_response({"neo4j_version": "5.26.0", "neo4j_edition": "community"})


class GremlinHttp:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/", self.submit)

    async def submit(self, req: web.Request) -> web.Response:
        body = json.loads(await req.read())
        self.received.append(body)
        return web.json_response(
            {
                "requestId": "r-1",
                "status": {"message": "", "code": 200, "attributes": {}},
                "result": {"data": [body["gremlin"]], "meta": {}},
            }
        )
