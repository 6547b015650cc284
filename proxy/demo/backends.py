"""Embedded demo backends on loopback: an HTTP JSON API and a SQL-over-HTTP endpoint on an
in-memory SQLite database with two tenants' rows (stdlib only, so the demo needs nothing
beyond CallWarden's own dependencies)."""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

SEED = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, customer_id INTEGER,
                     item TEXT NOT NULL, amount REAL NOT NULL);
INSERT INTO customers VALUES (1, 'acme', 'Ada'), (2, 'acme', 'Bob'), (3, 'globex', 'Gus');
INSERT INTO orders VALUES (1, 'acme', 1, 'anvil', 120.0), (2, 'acme', 2, 'rocket', 900.0),
  (3, 'globex', 3, 'laser', 5000.0), (4, 'globex', 3, 'shark', 75000.0);
"""


def demo_database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.executescript(SEED)
    return db


def api_app() -> web.Application:
    """A CRM-like JSON API that echoes what reached it, the Authorization header CallWarden
    injected included: the route masks injected values in answers, so the caller sees
    that a credential went upstream but never the credential."""

    async def handle(req: web.Request) -> web.Response:
        return web.json_response(
            {
                "service": "demo-crm",
                "method": req.method,
                "path": req.path,
                "tenant": req.headers.get("X-Tenant-ID"),
                "authorization_received": req.headers.get("Authorization"),
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def sql_app(db: sqlite3.Connection | None = None) -> web.Application:
    """POST /query {"query": "..."} -> {"columns": [...], "rows": [[...], ...]}."""
    db = db or demo_database()

    async def query(req: web.Request) -> web.Response:
        payload: Any = await req.json()
        try:
            cur = db.execute(payload["query"])
        except sqlite3.Error as exc:
            return web.json_response({"error": str(exc)}, status=400)
        columns = [d[0] for d in cur.description or ()]
        rows = [list(r) for r in cur.fetchall()]
        # What the database ran: the caller sees CallWarden's tenant rewrite.
        return web.json_response({"sql_received": payload["query"], "columns": columns,
                                  "rows": rows})

    app = web.Application()
    app.router.add_post("/query", query)
    return app
