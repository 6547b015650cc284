"""One asyncio server per `kind: postgres` route: the connection start-up (TLS answer,
StartupMessage, client login, upstream login) and the bookkeeping around sessions
(connection cap, cancel keys). The statement traffic itself is session.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from proxy.compile import CompiledRoute
from proxy.config.schema import PostgresSpec
from proxy.model.errors import ErrorCode
from proxy.pgwire import messages as m
from proxy.pgwire.auth import MECHANISM, AuthError, ScramKeys, ScramServer, scram_keys
from proxy.pgwire.catalog import CatalogError, fetch_user_functions
from proxy.pgwire.chain import judge_caller, wire_caller
from proxy.pgwire.record import StatementRecord
from proxy.pgwire.session import WIRE_CHECKS, RouteContext, Session
from proxy.pgwire.settings import reported_refusal, upstream_settings
from proxy.pgwire.startup import (
    ClientStartup,
    has_plaintext_password,
    is_replication,
    read_startup,
    startup_refusal,
)
from proxy.pgwire.statements import refusal
from proxy.pgwire.upstream import UpstreamError, connect
from proxy.sql.pg.userfns import UserFunctions

log = logging.getLogger("callwarden.pgwire")

Credentials = Callable[[], Awaitable[tuple[str, str]]]
Secret = Callable[[], Awaitable[str]]
HANDSHAKE_S = 15.0
"""A client has this long to finish start-up and login (slow-loris guard)."""
DEFAULT_MAX_MESSAGE = 64 << 20
CATALOG_TTL_S = 600.0
"""A database's user-function table is read again after this long (and on reload)."""
CATALOG_RETRY_S = 30.0
"""After a failed read, unknown functions are refused this long before the next try."""


class Refused(Exception):
    """End the connection start-up with a FATAL ErrorResponse."""

    def __init__(self, code: ErrorCode, reason: str, sqlstate: str | None = None,
                 recorded: bool = False) -> None:
        super().__init__(reason)
        self.code, self.reason, self.sqlstate = code, reason, sqlstate
        self.recorded = recorded


def enforced_read_only(compiled: CompiledRoute) -> bool:
    """A read-only policy whose guard enforces: then the wire refuses COPY, fastpath calls
    and READ WRITE transactions, and PostgreSQL itself runs the session read-only. With
    sql_safety in audit mode writes are only recorded (would-deny), so the session is
    left as the server opens it."""
    sql = compiled.spec.sql
    return bool(sql and sql.read_only) and compiled.guard_mode("sql_safety") == "enforce"


def wants_catalog(compiled: CompiledRoute) -> bool:
    """Only a read-only route that is not tenant-scoped lets user functions pass by what
    the catalog says (a tenant predicate cannot reach into a function's body)."""
    sql = compiled.spec.sql
    return bool(sql and sql.read_only and not sql.tenant)


def _split(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


class PgListener:
    def __init__(
        self,
        compiled: CompiledRoute,
        resolve_credentials: Credentials,
        environment: str = "production",
        on_statement: Callable[[StatementRecord], None] | None = None,
        *,
        resolve_client_password: Secret | None = None,
        on_catalog: Callable[[str, str], None] | None = None,
    ) -> None:
        route = compiled.spec
        assert route.kind == "postgres" and route.listen is not None
        self.route = route
        self.pg = route.postgres or PostgresSpec()
        self.environment = environment
        self._credentials = resolve_credentials
        self._client_password = resolve_client_password
        self._scram: tuple[str, ScramKeys] | None = None
        host, port = _split(route.upstream)
        self.ctx = RouteContext(
            route=route.name,
            compiled=compiled,
            environment=environment,
            read_only=enforced_read_only(compiled),
            tenant_scoped=bool(route.sql and route.sql.tenant),
            timeout_s=route.limits.timeout_ms / 1000,
            upstream_host=host,
            upstream_port=port,
            max_message=route.limits.max_request_bytes or DEFAULT_MAX_MESSAGE,
            max_inspect=route.limits.max_inspect_bytes,
            on_statement=on_statement,
        )
        self._server: asyncio.Server | None = None
        self._sessions: dict[int, tuple[m.CancelKey, Session]] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._next_pid = secrets.randbelow(1 << 20) + 1
        self._on_catalog = on_catalog  # (route, outcome): the metric
        self._catalogs: dict[str, tuple[float, UserFunctions]] = {}  # database -> table
        self._catalog_reads: dict[str, asyncio.Task[UserFunctions]] = {}
        self._catalog_gen = 0  # rules version: a reload drops the tables

    @property
    def port(self) -> int:
        assert self._server is not None, "listener not started"
        return self._server.sockets[0].getsockname()[1]

    @property
    def connections(self) -> int:
        return len(self._handlers)

    def replace_route(self, compiled: CompiledRoute) -> None:
        """Hot reload of the route's guard chain: new connections get the new one, open
        ones keep theirs (their prepared statements were judged by it)."""
        sql = compiled.spec.sql
        self.ctx = dataclasses.replace(self.ctx, compiled=compiled,
                                       read_only=enforced_read_only(compiled),
                                       tenant_scoped=bool(sql and sql.tenant))
        self._catalog_gen += 1
        self._catalogs.clear()
        self._catalog_reads.clear()

    async def start(self) -> None:
        host, port = _split(self.route.listen or "127.0.0.1:0")
        self._server = await asyncio.start_server(self._handle, host, port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    # --- one connection --------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        with contextlib.suppress(OSError):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self._serve(reader, writer, task)
        except Refused as r:
            self._record_refusal(r)
            with contextlib.suppress(Exception):
                writer.write(refusal(r.code, r.reason, r.sqlstate, severity="FATAL"))
                await writer.drain()
        except (OSError, EOFError, TimeoutError, asyncio.CancelledError, m.ProtocolError):
            pass
        except Exception:
            log.exception("postgres route %s: connection failed", self.route.name)
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     task: asyncio.Task[None]) -> None:
        async with asyncio.timeout(HANDSHAKE_S):
            startup = await self._read_startup(reader, writer)
            if startup is None:
                return
            # Counted from here on; a cancel request is not a connection.
            self._handlers.add(task)
            ctx = self.ctx  # one snapshot for the whole session
            client = self._admit(startup, ctx)
            peer = writer.get_extra_info("peername")
            caller = wire_caller(client.tenant, client.role, peer[0] if peer else "")
            who = await judge_caller(ctx.compiled, caller, ctx.environment)
            self._record_connect(client, who.code, who.reason, who.guard, who.would_deny)
            if who.code is not None:
                raise Refused(who.code, who.reason, recorded=True)
            await self._client_login(reader, writer)
            writer.write(m.authentication(m.AUTH_OK))
            user, password = await self._credentials()
            # SECURITY: the settings that decide how the server reads a statement's bytes
            # (and read-only mode) are the proxy's, whatever the client asked for.
            forced = upstream_settings(ctx.read_only)
            params = {k: v for k, v in client.upstream_params.items()
                      if k.lower() not in forced}
            params.update(forced)
            params["database"] = self._database(client, user)
            functions = await self._user_functions(ctx, params["database"], user, password)
            try:
                up = await connect(self.ctx.upstream_host, self.ctx.upstream_port,
                                   self.pg.sslmode, params, user, password, HANDSHAKE_S)
            except UpstreamError as exc:
                raise Refused(exc.code, exc.message, exc.sqlstate) from None
            for status in up.greeting:
                if status[:1] == b"S" and (bad := reported_refusal(status[5:], ctx.read_only)):
                    up.writer.close()
                    raise Refused(ErrorCode.UPSTREAM_UNAVAILABLE, bad, "08006")
        key = self._new_key()
        session = Session(ctx, reader, writer, up, client.tenant, client.role, caller,
                          functions)
        writer.write(b"".join(up.greeting) + m.backend_key_data(key) + m.ready_for_query(up.status))
        self._sessions[key.pid] = (key, session)
        try:
            await session.run()
        finally:
            del self._sessions[key.pid]

    async def _user_functions(self, ctx: RouteContext, database: str, user: str,
                              password: str) -> UserFunctions | None:
        """The database's user-function table, read once per rules version (and per
        CATALOG_TTL_S) on a connection of the proxy's own; shared by concurrent logins."""
        if not wants_catalog(ctx.compiled):
            return None
        hit = self._catalogs.get(database)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        task = self._catalog_reads.get(database)
        if task is None:
            task = asyncio.create_task(self._read_catalog(database, user, password,
                                                          self._catalog_gen))
            self._catalog_reads[database] = task
        # A login that gives up does not cancel the read the others wait for.
        return await asyncio.shield(task)

    async def _read_catalog(self, database: str, user: str, password: str,
                            gen: int) -> UserFunctions:
        try:
            table = await fetch_user_functions(self.ctx.upstream_host, self.ctx.upstream_port,
                                               self.pg.sslmode, database, user, password)
            outcome, ttl = "ok", CATALOG_TTL_S
        except CatalogError as exc:
            log.warning("postgres route %s: cannot read user functions from the upstream's "
                        "catalog (%s); functions that are not PostgreSQL built-ins are "
                        "refused unless allowed by name", self.route.name, exc)
            table = UserFunctions(source="unavailable")
            outcome, ttl = exc.outcome, CATALOG_RETRY_S
        except Exception:  # SECURITY: never a stuck read; unknown functions stay refused
            log.exception("postgres route %s: reading the upstream's catalog failed",
                          self.route.name)
            table = UserFunctions(source="unavailable")
            outcome, ttl = "error", CATALOG_RETRY_S
        if gen == self._catalog_gen:
            self._catalogs[database] = (time.monotonic() + ttl, table)
            self._catalog_reads.pop(database, None)
        if self._on_catalog is not None:
            with contextlib.suppress(Exception):
                self._on_catalog(self.route.name, outcome)
        return table

    async def _read_startup(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> m.Startup | None:
        for _ in range(3):  # at most SSLRequest, GSSENCRequest, then the real one
            head = await reader.readexactly(4)
            length = int.from_bytes(head, "big", signed=True)
            if length < 8 or length > m.MAX_STARTUP:
                raise m.ProtocolError("bad startup packet length")
            try:
                packet = m.parse_startup_packet(await reader.readexactly(length - 4))
            except m.NotUtf8:
                raise Refused(ErrorCode.TOOL_BAD_REQUEST,
                              "startup parameters are not valid UTF-8", "22021") from None
            if isinstance(packet, m.SpecialRequest):
                writer.write(b"N")  # plain on loopback: no TLS/GSS towards the client
                continue
            if isinstance(packet, m.CancelKey):
                await self._forward_cancel(packet)
                return None
            unknown = [k for k in packet.params if k.startswith("_pq_.")]
            if packet.version != m.PROTOCOL_3 or unknown:
                writer.write(m.negotiate_protocol_version(0, unknown))
            return packet
        raise m.ProtocolError("too many startup packets")

    def _admit(self, startup: m.Startup, ctx: RouteContext) -> ClientStartup:
        """Connection-level checks, in order; raises Refused."""
        if len(self._handlers) > self.pg.max_connections:
            raise Refused(ErrorCode.RATE_LIMITED,
                          f"too many connections for route {self.route.name}", "53300")
        if is_replication(startup.params):
            raise Refused(ErrorCode.POLICY_DENY, "replication connections are not allowed")
        if has_plaintext_password(startup.params) and self.environment == "production":
            raise Refused(ErrorCode.POLICY_DENY,
                          "plaintext credential in the startup packet (use client_auth)")
        unsafe = startup_refusal(startup.params, ctx.read_only)
        if unsafe is not None:
            raise Refused(ErrorCode.POLICY_DENY, unsafe, "22023")
        tenant_spec = self.route.tenant
        # Who the caller is (tenant, role) is judged by the route's own identity and
        # access guards, in their modes (_serve).
        return read_startup(startup.params, tenant_spec.startup_parameter if tenant_spec
                            else None)

    def _database(self, client: ClientStartup, user: str) -> str:
        tenant_param = self.route.tenant.startup_parameter if self.route.tenant else None
        if self.pg.database:
            return self.pg.database
        if tenant_param != "database" and client.database:
            return client.database
        return user

    async def _client_login(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        """trust, or SCRAM-SHA-256 against the route's client_password (never cleartext:
        that would put a plaintext credential on the wire)."""
        if self.pg.client_auth == "trust":
            return
        if self._client_password is None:
            raise Refused(ErrorCode.AUTH_FAILED, "client password is not configured")
        server = ScramServer(await self._keys())
        writer.write(m.authentication(m.AUTH_SASL, MECHANISM.encode() + b"\0\0"))
        try:
            mech, first = m.parse_sasl_initial_response(await self._password_body(reader))
            if mech != MECHANISM:
                raise AuthError("unsupported SASL mechanism")
            writer.write(m.authentication(m.AUTH_SASL_CONTINUE, server.server_first(first)))
            final = server.server_final(await self._password_body(reader))
        except AuthError as exc:
            raise Refused(ErrorCode.AUTH_FAILED, str(exc), "28P01") from None
        writer.write(m.authentication(m.AUTH_SASL_FINAL, final))

    async def _password_body(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readexactly(5)
        length = m.frame_length(head, 0) - 1
        if head[:1] != b"p" or not 4 <= length <= m.MAX_STARTUP:
            raise m.ProtocolError("expected a password message")
        return await reader.readexactly(length - 4)

    async def _keys(self) -> ScramKeys:
        assert self._client_password is not None
        password = await self._client_password()
        if self._scram is None or not hmac.compare_digest(self._scram[0], password):
            keys = await asyncio.to_thread(scram_keys, password)  # PBKDF2: off the loop
            self._scram = (password, keys)
        return self._scram[1]

    # --- cancel keys -----------------------------------------------------------------

    def _new_key(self) -> m.CancelKey:
        self._next_pid = self._next_pid % 0x7FFFFFFF + 1
        return m.CancelKey(self._next_pid, secrets.randbits(31))

    async def _forward_cancel(self, key: m.CancelKey) -> None:
        entry = self._sessions.get(key.pid)
        # SECURITY: the fake secret must match; the real key never leaves the proxy.
        if entry is not None and hmac.compare_digest(
            entry[0].secret.to_bytes(4, "big"), key.secret.to_bytes(4, "big", signed=True)
        ):
            await entry[1].cancel_upstream()

    def _record_refusal(self, r: Refused) -> None:
        if self.ctx.on_statement is None or r.recorded:
            return
        rec = StatementRecord(self.route.name, None, None, "connect", None, "denied", r.code,
                              r.reason, False, 0.0, 0.0, WIRE_CHECKS)
        with contextlib.suppress(Exception):
            self.ctx.on_statement(rec)

    def _record_connect(self, client: ClientStartup, code: ErrorCode | None, reason: str,
                        guard: str, would_deny: tuple[tuple[str, str, str], ...]) -> None:
        """A connection the caller guards refused, or let through in audit mode."""
        if self.ctx.on_statement is None or (code is None and not would_deny):
            return
        rec = StatementRecord(self.route.name, client.tenant, client.role, "connect", None,
                              "denied" if code else "allowed", code, reason, False, 0.0, 0.0,
                              guard, would_deny)
        with contextlib.suppress(Exception):
            self.ctx.on_statement(rec)
