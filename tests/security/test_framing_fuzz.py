"""A differential framing fuzzer: random pipelines of requests (methods, content codings,
Content-Length or chunked framing, chunk splits, Expect, bodies that spell HTTP, bodies
over the caps, a last body cut short) go through the proxy to a strict h11 upstream.
For inputs nobody listed, it holds the invariant: exactly one upstream request per
request the proxy answered from the upstream, none for the others, and each with exactly
the body the guards saw (when they read it) and the caller meant (decoded)."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.app import Server, build_state
from proxy.config.load import load_rules
from tests.security.h11_upstream import H11Upstream

CAP = 3000
INSPECT = 4096
WORDS = [
    b"a", b"bb", b"ccc ", b"{", b"}", b"[1]", b"\r\n", b"\n", b"\x00", b"\xff\xfe",
    b"0\r\n\r\n", b"5\r\nhello\r\n", b"HTTP/1.1 200 OK\r\n",
    b"POST /admin/x HTTP/1.1\r\nHost: u\r\nContent-Length: 4\r\n\r\n",
    b"GET /plain/y HTTP/1.1\r\nHost: u\r\n\r\n", b"Transfer-Encoding: chunked\r\n",
]
SUPPORTED = {None: "", "identity": "", "gzip": "", "x-gzip": "", "GZIP": "", "deflate": "",
             "deflate-raw": ""}
CODINGS = [*SUPPORTED, "br", "gzip, gzip", "compress"]


class Harness:
    """The proxy and the h11 upstream on a background event loop, shared by all
    examples (so pooled upstream connections carry over from one example to the next,
    and any desync would show up as an extra request)."""

    def __init__(self, rules: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.upstream = H11Upstream()
        self.judged: dict[str, bytes | None] = {}
        self.rules = rules
        self.server: Server | None = None

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self) -> int:
        base = await self.upstream.start()
        self.rules.write_text(yaml.safe_dump(rules_doc(base)))
        state = build_state(load_rules(self.rules))
        for route in state.compiled.routes.values():
            self._record_decode(route.codec)
        self.server = Server(state, "127.0.0.1:0", "127.0.0.1:0")
        await self.server.start()
        return self.server.ports["proxy"]

    def _record_decode(self, codec: Any) -> None:
        decode = codec.decode

        def recording(route: Any, request: Any, caller: Any) -> Any:
            self.judged[caller.trace_id] = request.body
            return decode(route, request, caller)

        codec.decode = recording

    def start(self) -> int:
        port: int = self.run(self._start())
        return port

    def stop(self) -> None:
        async def stop() -> None:
            if self.server is not None:
                await self.server.stop(drain_s=1)
            await self.upstream.stop()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def rules_doc(up: str) -> dict[str, Any]:
    limits = {"timeout_ms": 5000, "max_inspect_bytes": INSPECT}
    return {
        "version": 1,
        "environment": "development",  # the credential scan reads bodies, never blocks
        "routes": [
            {"name": "plain", "match": {"path_prefix": "/plain"}, "upstream": up,
             "limits": limits},
            {"name": "capped", "match": {"path_prefix": "/capped"}, "upstream": up,
             "limits": {**limits, "max_request_bytes": CAP}},
            {"name": "inspect", "match": {"path_prefix": "/inspect"}, "upstream": up,
             "credentials": {"inject": {"X-Api-Key": "fuzz-key"}}, "limits": limits},
            {"name": "admin", "match": {"path_prefix": "/admin"}, "upstream": up,
             "access": {"roles": ["admin"]}, "limits": limits},
        ],
    }


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, int]]:
    h = Harness(tmp_path_factory.mktemp("fuzz") / "rules.yaml")
    port = h.start()
    yield h, port
    h.stop()


@dataclass(frozen=True)
class Call:
    method: str
    route: str
    body: bytes
    coding: str | None
    framing: str  # length | chunked | none
    splits: tuple[int, ...]
    json: bool
    expect: bool


def encode(body: bytes, coding: str | None) -> bytes:
    if coding in (None, "identity"):
        return body
    if coding == "deflate":
        return zlib.compress(body)
    if coding == "deflate-raw":
        z = zlib.compressobj(wbits=-15)
        return z.compress(body) + z.flush()
    return gzip.compress(body, mtime=0)  # gzip, x-gzip, GZIP; and the refused ones


def wire(call: Call, trace: str, cut: bool = False) -> bytes:
    coding = "deflate" if call.coding == "deflate-raw" else call.coding
    enc = encode(call.body, call.coding) if call.framing != "none" else b""
    head = [
        f"{call.method} /{call.route}/x HTTP/1.1",
        "Host: localhost",
        "X-Caller-Role: agent",
        f"X-Trace-ID: {trace}",
        f"Content-Type: {'application/json' if call.json else 'application/octet-stream'}",
    ]
    if coding is not None:
        head.append(f"Content-Encoding: {coding}")
    if call.expect and call.framing != "none":
        head.append("Expect: 100-continue")
    if call.framing == "length":
        head.append(f"Content-Length: {len(enc) + (7 if cut else 0)}")
        data = enc
    elif call.framing == "chunked":
        head.append("Transfer-Encoding: chunked")
        data, rest = b"", enc
        for size in call.splits:
            if rest:
                piece, rest = rest[: size or 1], rest[size or 1 :]
                data += b"%x\r\n%b\r\n" % (len(piece), piece)
        if rest:
            data += b"%x\r\n%b\r\n" % (len(rest), rest)
        if not cut:
            data += b"0\r\n\r\n"
    else:
        data = b""
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def expected_status(call: Call) -> int:
    """What the proxy must answer, from the documented rules alone."""
    if call.framing == "none":
        return 200
    if call.coding not in SUPPORTED:
        return 415
    size = len(call.body)
    if call.route == "capped" and size > CAP:
        return 413
    enc_len = len(encode(call.body, call.coding))
    # every route scans credentials: a JSON body with a small declared length is read
    buffered = call.json and call.framing == "length"
    if buffered and 0 < enc_len <= INSPECT and size > INSPECT:
        return 413
    return 200


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Final responses in order (interim 1xx skipped); stops at EOF."""
    buf = b""
    out: list[tuple[int, dict[str, str], bytes]] = []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            more = sock.recv(65536)
            if not more:
                return out
            buf += more
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if 100 <= status < 200:
            continue
        assert "transfer-encoding" not in headers
        length = int(headers.get("content-length", "0"))
        while len(buf) < length:
            more = sock.recv(65536)
            if not more:
                return out
            buf += more
        out.append((status, headers, buf[:length]))
        buf = buf[length:]
    return out


calls = st.builds(
    Call,
    method=st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "GET", "OPTIONS"]),
    route=st.sampled_from(["plain", "capped", "inspect"]),
    body=st.one_of(
        st.lists(st.sampled_from(WORDS), max_size=40).map(b"".join),
        st.tuples(st.sampled_from(WORDS), st.integers(1, 2500)).map(lambda t: t[0] * t[1]),
        st.binary(max_size=300),
    ),
    coding=st.sampled_from(CODINGS),
    framing=st.sampled_from(["length", "chunked", "none"]),
    splits=st.lists(st.integers(0, 700), max_size=6).map(tuple),
    json=st.booleans(),
    expect=st.booleans(),
)
_counter = iter(range(10**9))


@settings(
    max_examples=70,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    pipeline=st.lists(calls, min_size=1, max_size=3),
    cut_last=st.booleans(),
    write_splits=st.lists(st.integers(1, 400), max_size=4),
)
def test_one_upstream_request_per_proxied_request_with_the_judged_body(
    harness: tuple[Harness, int], pipeline: list[Call], cut_last: bool, write_splits: list[int]
) -> None:
    h, port = harness
    n = next(_counter)
    traces = [f"fz{n}-{i}" for i in range(len(pipeline))]
    cut = cut_last and pipeline[-1].framing != "none" and expected_status(pipeline[-1]) == 200
    data = b"".join(
        wire(c, t, cut=cut and i == len(pipeline) - 1)
        for i, (c, t) in enumerate(zip(pipeline, traces, strict=True))
    )
    h.upstream.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        rest = data
        for size in write_splits:  # the pipeline arrives in arbitrary pieces
            sock.sendall(rest[:size])
            rest = rest[size:]
        sock.sendall(rest)
        answered = read_responses(sock, len(pipeline) - (1 if cut else 0))
    # (a cut body: the caller goes away before its end; the proxy must abandon it)
    whole = pipeline[:-1] if cut else pipeline
    assert len(answered) == len(whole), (answered, pipeline)
    # the upstream answers each request it parsed before the proxy can answer the caller
    seen, errors, _ = h.upstream.snapshot()
    by_trace = {s.header("x-trace-id"): s for s in seen}
    from_upstream = 0
    for call, trace, (status, headers, _body) in zip(whole, traces, answered, strict=False):
        assert status == expected_status(call), (call, status, _body[:200])
        if status != 200:
            assert "x-upstream-seq" not in headers
            assert trace not in by_trace
            continue
        from_upstream += 1
        up = by_trace[trace]
        assert str(up.seq) == headers["x-upstream-seq"]
        assert up.method == call.method
        want = call.body if call.framing != "none" else b""
        assert up.body == want, (call, up.body[:100])
        judged = h.judged.get(trace)
        if judged is not None:
            assert judged == want  # the guards read exactly what was sent
        assert up.header("content-encoding") is None
        assert up.header("expect") is None
        if up.header("content-length") is not None:
            assert up.header("content-length") == str(len(want))
    if cut:
        assert traces[-1] not in by_trace  # a body cut short never completes upstream
    assert len(seen) == from_upstream, [(s.target, s.header("x-trace-id")) for s in seen]
    assert not errors
