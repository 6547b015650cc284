"""The upstream's user functions, read from its catalog (pg_proc) on a short-lived
connection of the proxy's own: never through a caller's session, whose search_path,
role or transaction the caller may have shaped. The judge gets the rows as a typed table
(proxy/sql/pg/userfns.py); a failure yields an empty table, so unknown functions stay
refused (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

from proxy.pgwire import messages as m
from proxy.pgwire.upstream import UpstreamError, connect, read_message
from proxy.sql.pg.userfns import CatalogRow, UserFunctions

# SECURITY: fully qualified catalog names: nothing on a search_path can stand in for them.
CATALOG_SQL = (
    "SELECT n.nspname, p.proname, p.prokind, p.provolatile, l.lanname "
    "FROM pg_catalog.pg_proc p "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace "
    "JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang "
    "WHERE n.nspname OPERATOR(pg_catalog.<>) ALL "
    "(ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[])"
)
MAX_ROWS = 100_000
"""More functions than this is not a database the proxy can hold in memory per route."""
MAX_MESSAGE = 1 << 16
FETCH_TIMEOUT_S = 5.0


class CatalogError(Exception):
    """The catalog could not be read; `outcome` is the metric label."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def _data_row(body: bytes) -> list[str | None]:
    (count,) = struct.unpack_from("!h", body, 0)
    pos, out = 2, []
    for _ in range(count):
        (size,) = struct.unpack_from("!i", body, pos)
        pos += 4
        if size < 0:
            out.append(None)
            continue
        out.append(body[pos : pos + size].decode("utf-8", "replace"))
        pos += size
    return out


async def fetch_user_functions(host: str, port: int, sslmode: str, database: str, user: str,
                               password: str, timeout_s: float = FETCH_TIMEOUT_S,
                               ) -> UserFunctions:
    """Raises CatalogError (never with a secret in it)."""
    params = {"database": database, "client_encoding": "UTF8",
              "application_name": "callwarden-catalog",
              "options": f"-c default_transaction_read_only=on "
                         f"-c statement_timeout={int(timeout_s * 1000)}"}
    rows: list[CatalogRow] = []
    try:
        async with asyncio.timeout(timeout_s):
            up = await connect(host, port, sslmode, params, user, password, timeout_s)
            try:
                up.writer.write(m.query(CATALOG_SQL))
                await up.writer.drain()
                while True:
                    tag, body = await read_message(up.reader, MAX_MESSAGE)
                    if tag == b"D":
                        if len(rows) >= MAX_ROWS:
                            raise CatalogError("too_large", f"more than {MAX_ROWS} functions")
                        schema, name, kind, vol, lang = _data_row(body)
                        rows.append(CatalogRow(schema or "", name or "", kind or "",
                                               vol or "", lang or ""))
                    elif tag == b"E":
                        fields = m.parse_fields(body)
                        raise CatalogError("error", f"catalog query failed "
                                           f"(SQLSTATE {fields.get('C', '?')})")
                    elif tag == b"Z":
                        break
            finally:
                with contextlib.suppress(Exception):
                    up.writer.write(m.TERMINATE)
                up.writer.close()
    except UpstreamError as exc:
        raise CatalogError("error", exc.message) from None
    except TimeoutError:
        raise CatalogError("timeout", f"no answer within {timeout_s:g} s") from None
    except (OSError, EOFError, m.ProtocolError, struct.error, ValueError) as exc:
        raise CatalogError("error", type(exc).__name__) from None
    return UserFunctions.from_rows(rows, f"upstream catalog of database {database}")
