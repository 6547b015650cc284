"""One client connection after login: two pumps, client->upstream judged, upstream->client
passed through.

Ordering is the hard part. Every Query, FunctionCall and Sync forwarded upstream earns
exactly one ReadyForQuery back; counting them (`_sent` vs `_seen`) tells where in the
upstream's reply stream a refusal belongs. A refusal is queued to go out right after
the ReadyForQuery that ends the replies to everything forwarded before it, so a client
that pipelines still sees answers in the order it asked. The ReadyForQuery after a
refusal is the upstream's own (we forward a Sync), so the transaction status the client
sees is always the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from proxy.compile import CompiledRoute
from proxy.model.call import Caller
from proxy.model.errors import ErrorCode
from proxy.pgwire import messages as m
from proxy.pgwire.chain import Judged, judge_statement
from proxy.pgwire.record import StatementRecord
from proxy.pgwire.settings import reported_refusal
from proxy.pgwire.statements import Outcome, refusal, wire_checks
from proxy.pgwire.upstream import UpstreamSession, send_cancel
from proxy.sql.pg.userfns import UserFunctions

WIRE_CHECKS = "pgwire"
"""The guard name on records of refusals the wire makes itself (statements.py, settings)."""
FEATURE_NOT_SUPPORTED = "0A000"
PROTOCOL_VIOLATION = "08P01"
NOT_UTF8 = "22021"
"""character_not_in_repertoire, as PostgreSQL answers invalid UTF-8."""
CHUNK = 65536
STREAM_OVER = 256 * 1024
"""Upstream DataRow/CopyData frames larger than this are streamed, not buffered."""
MAX_UPSTREAM_FRAME = 1 << 30
_PASS_CLIENT = frozenset(b"BDECH")
_COPY = frozenset(b"dcf")
_STREAMABLE = frozenset(b"Dd")


def _setting_dependent(buf: bytearray, start: int, end: int) -> bool:
    """Text whose reading could change with client_encoding or standard_conforming_strings:
    any byte >= 0x80 or a backslash."""
    return buf.find(b"\\", start, end) >= 0 or not buf[start:end].isascii()


class SessionEnded(Exception):
    """The proxy ends the session (the client was told why)."""


@dataclass(frozen=True, slots=True)
class RouteContext:
    """Per-route constants, built once by the listener and shared by its sessions."""

    route: str
    compiled: CompiledRoute
    """The route as compiled (its guard chain and modes); a session keeps the one it
    started with (its prepared statements were judged by it)."""
    environment: str
    read_only: bool
    tenant_scoped: bool
    timeout_s: float
    upstream_host: str
    upstream_port: int
    max_message: int
    max_inspect: int
    on_statement: Callable[[StatementRecord], None] | None = None


@dataclass(slots=True)
class _Open:
    sync_no: int
    started: float
    message: str
    outcome: Outcome
    inspect_s: float
    on_done: tuple[Callable[[], None], ...] = ()


@dataclass(slots=True)
class Session:
    ctx: RouteContext
    creader: asyncio.StreamReader
    cwriter: asyncio.StreamWriter
    up: UpstreamSession
    tenant: str | None
    role: str | None
    caller: Caller
    user_functions: UserFunctions | None = None
    """The upstream database's user-function table (None: not read for this route)."""
    _sent: int = 0
    _seen: int = 0
    _unsynced: int = 0
    _discarding: bool = False
    _hidden: set[int] = field(default_factory=set)
    _inject: deque[tuple[int, bytes]] = field(default_factory=deque)
    _open: deque[_Open] = field(default_factory=deque)
    _timer: asyncio.TimerHandle | None = None
    _cancel_sent: bool = False
    _timed_out: bool = False
    _segment_error: bool = False
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _quiet: asyncio.Future[None] | None = None
    """Resolved when every forwarded statement has been answered (see _must_wait)."""

    async def run(self) -> None:
        pumps = [asyncio.create_task(self._client_pump()), asyncio.create_task(self._up_pump())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in pumps:
                t.cancel()
            for t in pumps:
                with contextlib.suppress(BaseException):
                    await t
            if self._timer is not None:
                self._timer.cancel()
            self.up.writer.close()
            for o in self._open:
                for done in o.on_done:
                    done()

    async def cancel_upstream(self) -> None:
        """Forward a client's CancelRequest with the upstream's real key."""
        if self.up.key is not None:
            await send_cancel(self.ctx.upstream_host, self.ctx.upstream_port, self.up.key)

    # --- client -> upstream ----------------------------------------------------------

    async def _client_pump(self) -> None:
        buf = bytearray()
        while data := await self.creader.read(CHUNK):
            buf += data
            out = bytearray()
            run, done = -1, 0
            for start, end in m.iter_frames(buf, 0, self.ctx.max_message):
                if self._must_wait(buf, start, end):
                    if run >= 0:
                        out += buf[run:start]
                        run = -1
                    if out:
                        self.up.writer.write(out)
                        self._arm()
                        out = bytearray()
                        await self.up.writer.drain()
                    await self._answered()
                rep = await self._from_client(buf, start, end)
                if rep is None:
                    run = start if run < 0 else run
                else:
                    if run >= 0:
                        out += buf[run:start]
                        run = -1
                    out += rep
                done = end
            if run >= 0:
                out += buf[run:done]
            del buf[:done]
            if out:
                self.up.writer.write(out)
                self._arm()
                await self.up.writer.drain()

    def _must_wait(self, buf: bytearray, start: int, end: int) -> bool:
        """A statement whose reading depends on the session's encoding or string settings
        (a byte >= 0x80, a backslash) waits until everything forwarded before it has been
        answered: a view or function may have changed those settings unseen, and the
        server reports that (ParameterStatus, which ends the session) before its
        ReadyForQuery. Pure-ASCII text without backslashes reads the same under every
        encoding PostgreSQL offers, so pipelines of it never wait."""
        tag = buf[start]
        if (tag != ord("Q") and tag != ord("P")) or self._discarding or self._unsynced:
            return False
        return self._sent > self._seen and _setting_dependent(buf, start + 5, end)

    async def _answered(self) -> None:
        while self._sent > self._seen:
            self._quiet = asyncio.get_running_loop().create_future()
            await self._quiet

    async def _from_client(self, buf: bytearray, start: int, end: int) -> bytes | None:
        """None = forward the frame as is; bytes = send these instead (maybe nothing)."""
        tag = buf[start]
        if self._discarding:
            if tag == ord("S"):
                self._discarding = False
                self._sent += 1
                return None
            return None if tag == ord("X") else b""
        if tag in _PASS_CLIENT:
            self._unsynced += tag != ord("H")
            return None
        if tag == ord("S"):
            self._sent += 1
            self._unsynced = 0
            return None
        if tag == ord("Q") or tag == ord("P"):
            simple = tag == ord("Q")
            body = bytes(buf[start + 5 : end])
            try:
                parse = None if simple else m.parse_parse(body)
                sql = m.parse_query(body) if parse is None else parse.sql
            except m.BadText as exc:
                utf8 = isinstance(exc, m.NotUtf8)
                reason = "statement text is not valid UTF-8" if utf8 else str(exc)
                return self._refuse(Outcome(ErrorCode.TOOL_BAD_REQUEST, reason,
                                            sqlstate=NOT_UTF8 if utf8 else PROTOCOL_VIOLATION),
                                    "query" if simple else "parse", simple)
            if self._unsynced and _setting_dependent(buf, start + 5, end):
                # SECURITY: statements before it in this pipeline are not answered until
                # a Sync, so a settings change they make could not be seen in time.
                reason = ("a statement with non-ASCII text or a backslash must not follow "
                          "unsynchronised statements (send a Sync first)")
                return self._refuse(Outcome(ErrorCode.TOOL_BAD_REQUEST, reason,
                                            sqlstate=FEATURE_NOT_SUPPORTED),
                                    "query" if simple else "parse", simple)
            return await self._statement(sql, parse, end - start)
        if tag == ord("F"):
            if self.ctx.read_only or self.ctx.tenant_scoped:
                # SECURITY: a fastpath call names a function by OID with binary arguments:
                # nothing a SQL guard can read, so refused where unknown is refused.
                reason = "fastpath function calls are not allowed on this route"
                return self._refuse(Outcome(ErrorCode.SQL_BLOCKED, reason), "function", True)
            self._sent += 1
            return None
        if tag in _COPY:
            # SECURITY: COPY statements never start on read-only routes; stray copy data is
            # dropped (the server would ignore it outside COPY mode anyway).
            return b"" if self.ctx.read_only else None
        if tag == ord("X"):
            return None
        raise m.ProtocolError(f"unexpected frontend message {chr(tag)!r}")

    async def _statement(self, sql: str, parse: m.ParseMsg | None, size: int) -> bytes | None:
        kind = "query" if parse is None else "parse"
        simple = parse is None
        if size > self.ctx.max_inspect:
            reason = f"statement larger than {self.ctx.max_inspect} bytes"
            return self._refuse(Outcome(ErrorCode.TOOL_BAD_REQUEST, reason), kind, simple)
        t0 = time.perf_counter()
        pre = wire_checks(sql, self.ctx.read_only)
        if pre is not None:
            judged = Judged(pre)
        else:
            judged = await judge_statement(self.ctx.compiled, self.caller, sql,
                                           self.ctx.environment, kind, self.user_functions)
        outcome = judged.outcome
        inspect_s = time.perf_counter() - t0
        if outcome.code is not None:
            return self._refuse(outcome, kind, simple, inspect_s)
        if simple:
            self._sent += 1
            self._unsynced = 0
            sync_no = self._sent
        else:
            self._unsynced += 1
            sync_no = self._sent + 1
        self._open.append(_Open(sync_no, time.perf_counter(), kind, outcome, inspect_s,
                                judged.on_done))
        if not outcome.rewritten:
            return None
        if parse is None:
            return m.query(outcome.sql)
        return m.build_parse(m.ParseMsg(parse.name, outcome.sql, parse.param_types))

    def _refuse(self, outcome: Outcome, kind: str, simple: bool, inspect_s: float = 0) -> bytes:
        assert outcome.code is not None
        self._record(kind, outcome, "denied", outcome.code, inspect_s, 0.0)
        out = b""
        if self._unsynced:
            # Close the batch already forwarded, so the refusal lands after its replies.
            out += m.SYNC
            self._sent += 1
            self._hidden.add(self._sent)
            self._unsynced = 0
        self._queue(self._sent, refusal(outcome.code, outcome.reason, outcome.sqlstate))
        if simple:
            out += m.SYNC  # its ReadyForQuery carries the server's transaction status
            self._sent += 1
        else:
            self._discarding = True  # until the client's Sync, as the server would
        return out

    def _queue(self, after: int, data: bytes) -> None:
        if self._seen >= after and not self._inject:
            self.cwriter.write(data)
        else:
            self._inject.append((after, data))

    # --- upstream -> client ----------------------------------------------------------

    async def _up_pump(self) -> None:
        buf = bytearray()
        skip = 0
        reader = self.up.reader
        while data := await reader.read(CHUNK):
            if skip:
                n = min(skip, len(data))
                self.cwriter.write(data[:n])
                skip -= n
                data = data[n:]
                if not data:
                    await self.cwriter.drain()
                    continue
            buf += data
            out = bytearray()
            run, done = -1, 0
            for start, end in m.iter_frames(buf, 0, MAX_UPSTREAM_FRAME):
                tag = buf[start]
                if tag == ord("Z") or tag == ord("E") or tag == ord("S"):
                    if run >= 0:
                        out += buf[run:start]
                        run = -1
                    out += self._from_upstream(tag, bytes(buf[start + 5 : end]))
                elif run < 0:
                    run = start
                done = end
            if run >= 0:
                out += buf[run:done]
            rest = len(buf) - done
            if rest >= 5 and buf[done] in _STREAMABLE and rest > STREAM_OVER:
                skip = m.frame_length(buf, done) - rest
                out += buf[done:]
                done = len(buf)
            del buf[:done]
            if out:
                self.cwriter.write(out)
            await self.cwriter.drain()

    def _from_upstream(self, tag: int, body: bytes) -> bytes:
        if tag == ord("S"):
            bad = reported_refusal(body, self.ctx.read_only)
            if bad is not None:
                # SECURITY: a setting the proxy owns changed unseen; nothing more is judged
                # or answered on this session.
                self.cwriter.write(refusal(ErrorCode.SQL_BLOCKED, bad, "08006", "FATAL"))
                raise SessionEnded(bad)
            return m.frame(b"S", body)
        if tag == ord("E"):
            self._segment_error = True
            if self._cancel_sent and m.parse_fields(body).get("C") == "57014":
                self._timed_out = True
                ms = int(self.ctx.timeout_s * 1000)
                return refusal(ErrorCode.TOOL_TIMEOUT, f"statement exceeded the route "
                               f"timeout of {ms} ms and was cancelled")
            return m.frame(b"E", body)
        self._seen += 1
        self.up.status = body[:1]
        if self._quiet is not None and self._seen >= self._sent and not self._quiet.done():
            self._quiet.set_result(None)
        out = b"" if self._seen in self._hidden else m.frame(b"Z", body)
        self._hidden.discard(self._seen)
        while self._inject and self._inject[0][0] <= self._seen:
            out += self._inject.popleft()[1]
        self._close_segment()
        return out

    def _close_segment(self) -> None:
        now = time.perf_counter()
        while self._open and self._open[0].sync_no <= self._seen:
            o = self._open.popleft()
            if self._timed_out:
                outcome, code = "timeout", ErrorCode.TOOL_TIMEOUT
            else:
                outcome, code = ("error" if self._segment_error else "allowed"), None
            self._record(o.message, o.outcome, outcome, code, o.inspect_s, now - o.started)
            for done in o.on_done:
                done()
        self._segment_error = self._timed_out = self._cancel_sent = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._arm()

    # --- statement timeout -----------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is None and self._sent > self._seen:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.ctx.timeout_s, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        if self.up.key is None or self._sent <= self._seen:
            return
        self._cancel_sent = True
        task = asyncio.get_running_loop().create_task(self.cancel_upstream())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record(self, message: str, o: Outcome, outcome: str, code: ErrorCode | None,
                inspect_s: float, duration_s: float) -> None:
        if self.ctx.on_statement is None:
            return
        rec = StatementRecord(self.ctx.route, self.tenant, self.role, message, o.statement_kind,
                              outcome, code, o.reason if code else "", o.rewritten, inspect_s,
                              duration_s, (o.guard or WIRE_CHECKS) if outcome == "denied" else "",
                              o.would_deny)
        with contextlib.suppress(Exception):  # observers must not break the connection
            self.ctx.on_statement(rec)
