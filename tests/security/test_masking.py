"""Response filters never switch off (issue 21, item 2): the injected secret is masked in
every body type, in streamed and compressed answers and in response headers; a filter that
cannot run (an undecodable encoding, a document over the buffering cap) refuses the answer
with a code and a metric. End to end: the proxy in front of real loopback upstreams."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from aiohttp import web

from proxy.codecs.http import MAX_FILTERED_RESPONSE
from tests.credentials.fakes import rnd

SECRET = "cwsec-" + rnd(40)
BIG = MAX_FILTERED_RESPONSE + (1 << 20)
"""Larger than the buffering cap of whole-document filters."""


def _auth(req: web.Request) -> bytes:
    return req.headers.get("Authorization", "").removeprefix("Bearer ").encode()


def bomb() -> web.Response:
    """A small JSON answer that inflates past the cap of a whole-document filter."""
    body = b'{"rows": [' + b"1," * (BIG // 2) + b"1]}"
    return web.Response(
        body=gzip.compress(body, 1),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )


class Leaky:
    """An upstream that echoes the credential it was sent in every way a real one might."""

    def __init__(self) -> None:
        self.app = web.Application()
        r = self.app.router
        r.add_get("/header", self.header)
        r.add_get("/binary", self.binary)
        r.add_get("/gzip", self.gzip_json)
        r.add_get("/deflate", self.deflate_text)
        r.add_get("/brotli", self.brotli)
        r.add_get("/corrupt", self.corrupt)
        r.add_get("/big", self.big)
        r.add_get("/chunked", self.chunked)
        r.add_get("/bomb", self.bomb)
        r.add_get("/utf16", self.utf16)
        r.add_get("/range", self.ranged)
        r.add_get("/partial", self.partial)

    async def header(self, req: web.Request) -> web.Response:
        token = _auth(req).decode()
        return web.Response(
            text="ok",
            headers={"X-Debug-Auth": f"Bearer {token}", "Location": f"/next?t={token}"},
        )

    async def binary(self, req: web.Request) -> web.Response:
        return web.Response(
            body=b"\x00\x01" + _auth(req) + b"\xff\xfe", content_type="application/octet-stream"
        )

    async def gzip_json(self, req: web.Request) -> web.Response:
        # SECURITY under test: the proxy asked for identity; this server ignores it.
        body = json.dumps({"you_sent": _auth(req).decode()}).encode()
        return web.Response(
            body=gzip.compress(body),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def deflate_text(self, req: web.Request) -> web.Response:
        return web.Response(
            body=zlib.compress(b"token=" + _auth(req)),
            headers={"Content-Encoding": "deflate", "Content-Type": "text/plain"},
        )

    async def brotli(self, req: web.Request) -> web.Response:
        return web.Response(
            body=b"\x1b" + _auth(req),  # whatever it is, the proxy cannot read it
            headers={"Content-Encoding": "br", "Content-Type": "application/json"},
        )

    async def corrupt(self, req: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"a": "' + _auth(req) + b'"}')[:-12] + b"garbage!!!!!",
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def big(self, req: web.Request) -> web.StreamResponse:
        """Over the cap, with a Content-Length, the secret at the start, across the
        boundaries of the writes, and at the very end."""
        token = _auth(req)
        filler = b"x" * (1 << 20)
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = BIG
        await resp.prepare(req)
        sent = 0
        await resp.write(token)
        sent += len(token)
        half = len(token) // 2
        while sent + len(filler) + 2 * len(token) <= BIG:
            await resp.write(filler[:-half])
            await resp.write(filler[-half:] + token[:half])
            await resp.write(token[half:])
            sent += len(filler) + len(token)
        await resp.write(b"y" * (BIG - sent - len(token)) + token)
        await resp.write_eof()
        return resp

    async def chunked(self, req: web.Request) -> web.StreamResponse:
        """No Content-Length, not a text type, the secret cut across tiny writes."""
        token = _auth(req)
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        for _ in range(3):
            await resp.write(b"a" * 70_000)
            for i in range(0, len(token), 3):
                await resp.write(token[i : i + 3])
        await resp.write_eof()
        return resp

    async def bomb(self, req: web.Request) -> web.Response:
        return bomb()

    async def utf16(self, req: web.Request) -> web.Response:
        body = json.dumps({"you_sent": _auth(req).decode()}).encode("utf-16-le")
        return web.Response(body=body, headers={"Content-Type": "text/plain; charset=utf-16le"})

    async def ranged(self, req: web.Request) -> web.Response:
        """Serves byte ranges: piece by piece, a secret would never be whole in one."""
        body = b"token=" + _auth(req)
        wanted = req.headers.get("Range", "")
        if wanted.startswith("bytes="):
            start, _, end = wanted[6:].partition("-")
            part = body[int(start) : int(end) + 1]
            return web.Response(
                status=206,
                body=part,
                headers={"Content-Range": f"bytes {start}-{end}/{len(body)}"},
                content_type="application/octet-stream",
            )
        return web.Response(body=body, content_type="application/octet-stream")

    async def partial(self, req: web.Request) -> web.Response:
        return web.Response(status=206, body=_auth(req)[:10], content_type="text/plain")


@pytest.fixture
async def leaky(serve_app) -> str:
    return await serve_app(Leaky().app)


@pytest.fixture
async def px(leaky, write_rules, start_proxy, monkeypatch):
    monkeypatch.setenv("CW_SEC_MASK", SECRET)
    return await start_proxy(
        write_rules(
            [
                {
                    "name": "leaky",
                    "match": {"path_prefix": "/leaky"},
                    "upstream": leaky,
                    "credentials": {
                        "inject": {"Authorization": "Bearer ${env:CW_SEC_MASK}"},
                        "mask_responses": True,
                    },
                },
                {"name": "plain", "match": {"path_prefix": "/plain"}, "upstream": leaky},
            ]
        )
    )


async def test_secret_echoed_in_a_response_header_is_masked(px) -> None:
    async with px.session.get(px.url + "/leaky/header") as r:
        assert r.status == 200
        heads = "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        assert SECRET not in heads
        assert r.headers["X-Debug-Auth"] == "Bearer [REDACTED]"
        assert r.headers["Location"] == "/next?t=[REDACTED]"
    assert px.metric("callwarden_secrets_masked_total", route="leaky") == 2


async def test_small_binary_body_is_masked(px) -> None:
    async with px.session.get(px.url + "/leaky/binary") as r:
        body = await r.read()
    assert r.status == 200
    assert body == b"\x00\x01[REDACTED]\xff\xfe"


@pytest.mark.parametrize(("path", "plain"), [("/gzip", '{"you_sent": "[REDACTED]"}'),
                                             ("/deflate", "token=[REDACTED]")])
async def test_compressed_answer_is_decoded_masked_and_sent_as_identity(
    px, path: str, plain: str
) -> None:
    async with px.session.get(px.url + "/leaky" + path) as r:  # the client does not decode
        body = await r.read()
        assert r.status == 200
        assert "Content-Encoding" not in r.headers
    assert body.decode() == plain


@pytest.mark.parametrize(("path", "reason"), [("/brotli", "encoding"),
                                              ("/corrupt", "undecodable")])
async def test_answer_that_cannot_be_decoded_is_refused_and_counted(
    px, path: str, reason: str
) -> None:
    async with px.session.get(px.url + "/leaky" + path) as r:
        body = await r.read()
        assert r.status == 502, body
        assert r.headers["X-CallWarden-Error-Code"] == "UPSTREAM_UNAVAILABLE"
    assert SECRET.encode() not in body
    assert px.metric(
        "callwarden_filter_refusals_total", route="leaky", filter="mask", reason=reason
    ) == 1


async def test_answer_over_the_cap_is_masked_as_it_streams(px) -> None:
    async with px.session.get(px.url + "/leaky/big") as r:
        assert r.status == 200
        body = await r.read()
    assert SECRET.encode() not in body
    n = body.count(b"[REDACTED]")
    assert n >= 18 and body.startswith(b"[REDACTED]") and body.endswith(b"[REDACTED]")
    assert len(body) == BIG - n * (len(SECRET) - len("[REDACTED]"))
    assert px.metric("callwarden_secrets_masked_total", route="leaky") == n


async def test_chunked_binary_stream_masked_across_chunk_boundaries(px) -> None:
    async with px.session.get(px.url + "/leaky/chunked") as r:
        body = await r.read()
    assert SECRET.encode() not in body
    assert body == (b"a" * 70_000 + b"[REDACTED]") * 3


async def test_wide_charset_answer_is_masked(px) -> None:
    async with px.session.get(px.url + "/leaky/utf16") as r:
        body = await r.read()
    assert SECRET.encode("utf-16-le") not in body
    assert json.loads(body.decode("utf-16-le")) == {"you_sent": "[REDACTED]"}


async def test_ranges_are_not_forwarded_on_a_filtered_route(px) -> None:
    """Piece by piece (Range), no answer would hold the whole secret: the proxy asks for
    whole answers where a filter must read them."""
    pieces = b""
    for start in range(0, 60, 10):
        headers = {"Range": f"bytes={start}-{start + 9}"}
        async with px.session.get(px.url + "/leaky/range", headers=headers) as r:
            assert r.status == 200
            pieces += await r.read()
    assert SECRET.encode() not in pieces and SECRET[:10].encode() not in pieces


async def test_partial_answer_nobody_asked_for_is_refused(px) -> None:
    async with px.session.get(px.url + "/leaky/partial") as r:
        assert r.status == 502 and SECRET[:10].encode() not in await r.read()
    assert px.metric(
        "callwarden_filter_refusals_total", route="leaky", filter="mask", reason="partial"
    ) == 1


async def test_head_answer_keeps_its_headers_masked(px) -> None:
    async with px.session.head(px.url + "/leaky/header") as r:
        assert r.status == 200
        assert r.headers["X-Debug-Auth"] == "Bearer [REDACTED]"


async def test_routes_without_filters_pass_encoded_answers_unchanged(px) -> None:
    """Transparency: no filter asked for, nothing decoded (and nothing to leak: no
    secret is injected there)."""
    async with px.session.get(px.url + "/plain/gzip") as r:
        body = await r.read()
        assert r.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(body)) == {"you_sent": ""}


# -- row caps ---------------------------------------------------------------------------


class Rows:
    """A SQL-over-HTTP upstream answering every query with many rows, as asked."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_post("/query", self.query)

    async def query(self, req: web.Request) -> web.StreamResponse:
        shape = req.query.get("shape", "small")
        if shape == "big":  # Content-Length over the cap of a whole-document filter
            row = b'["' + b"z" * 1000 + b'"],'
            n = BIG // len(row)
            body = b'{"rows": [' + row * n + b'["end"]]}'
            return web.Response(body=body, content_type="application/json")
        rows = json.dumps({"rows": [[i] for i in range(50)]}).encode()
        if shape == "gzip":
            return web.Response(
                body=gzip.compress(rows),
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        if shape == "bomb":
            return bomb()
        if shape == "ndjson":
            lines = b"".join(b'{"i": %d}\n' % i for i in range(50))
            return web.Response(body=lines, content_type="application/x-ndjson")
        if shape == "broken":
            return web.Response(body=rows[:-5] + b",,", content_type="application/json")
        return web.Response(body=rows, content_type="application/json")


@pytest.fixture
async def rows_px(serve_app, write_rules, start_proxy):
    url = await serve_app(Rows().app)
    return await start_proxy(
        write_rules(
            [
                {
                    "name": "db",
                    "kind": "sql",
                    "match": {"path_prefix": "/db"},
                    "upstream": url,
                    "sql": {"dialect": "postgres", "max_rows": 10},
                }
            ]
        )
    )


async def _query(px, shape: str) -> tuple[int, str | None, bytes]:
    async with px.session.post(
        px.url + f"/db/query?shape={shape}", json={"query": "SELECT 1"}
    ) as r:
        return r.status, r.headers.get("X-CallWarden-Error-Code"), await r.read()


async def test_row_cap_runs_on_a_compressed_answer(rows_px) -> None:
    status, code, _ = await _query(rows_px, "gzip")
    assert (status, code) == (422, "MAX_ROWS_EXCEEDED")


async def test_row_cap_counts_json_lines(rows_px) -> None:
    status, code, _ = await _query(rows_px, "ndjson")
    assert (status, code) == (422, "MAX_ROWS_EXCEEDED")


@pytest.mark.parametrize(("shape", "reason"), [("big", "too_large"), ("bomb", "too_large"),
                                               ("broken", "unreadable")])
async def test_row_cap_that_cannot_count_refuses_and_counts(
    rows_px, shape: str, reason: str
) -> None:
    status, code, body = await _query(rows_px, shape)
    assert (status, code) == (502, "UPSTREAM_UNAVAILABLE")
    assert len(body) < 4096  # the refusal, not the rows
    assert rows_px.metric(
        "callwarden_filter_refusals_total", route="db", filter="row_cap", reason=reason
    ) == 1


# -- tools/list -------------------------------------------------------------------------


async def test_tools_list_answer_over_the_cap_is_refused_not_passed_unfiltered(
    serve_app, write_rules, start_proxy
) -> None:
    """A tools/list answer the filter cannot hold whole would have gone out listing every
    tool, the hidden ones too."""
    hidden = {"name": "drop_everything", "description": "x" * 1000, "inputSchema": {}}

    async def tools(req: web.Request) -> web.Response:
        msg = await req.json()
        listing = {"tools": [hidden] * (BIG // 1000)}
        body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": listing}).encode()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/mcp", tools)
    url = await serve_app(app)
    px = await start_proxy(
        write_rules(
            [
                {
                    "name": "tools",
                    "kind": "mcp",
                    "match": {"path_prefix": "/mcp"},
                    "upstream": url + "/mcp",
                    "mcp": {"default": "deny", "tools": {"add": {"roles": ["*"]}}},
                }
            ]
        )
    )
    rpc = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    async with px.session.post(px.url + "/mcp", json=rpc, headers=headers) as r:
        body = await r.read()
    assert b"drop_everything" not in body
    doc = json.loads(body)
    assert doc["id"] == 7 and doc["error"]["data"]["error_code"] == "UPSTREAM_UNAVAILABLE"
    assert px.metric(
        "callwarden_filter_refusals_total", route="tools", filter="tools_list", reason="too_large"
    ) == 1
