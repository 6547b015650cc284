"""Verified identity and CEL conditions: what they cost per call.

1. JWT verification (PyJWT on cryptography): a fresh token per algorithm, and a token
   already verified (the cache by exact token text).
2. A typical three-clause condition (refund limit per role, region claim, tool name) on
   the CEL runtimes measured for the choice: cel-expr-python (Google's C++ runtime, in
   use), common-expression-language (Rust) and cel-python (pure Python), each given the
   activation the way it is fastest for it; plus the whole per-call path in use (values
   built for what the expression reads, then evaluated).
3. HTTP pass-through through one CallWarden process, same upstream, same load: a route
   with header identity and no condition vs a route with a verified token and an
   `access.when` of three clauses. Prints CPU time of the proxy per request.

    .venv/bin/python bench/identity_conditions.py [--calls 3000] [--concurrency 8] [--rounds 3]

The CEL runtime was chosen with this table (2-core box shared with other work, so
expect +-30%; us per call, the three-clause condition below):

    runtime                                          us/call
    cel-expr-python (C++), runtime every call           8-15
    cel-expr-python, values built + memo hit             3-8
    common-expression-language (Rust), dict in         65-85
    cel-python (pure Python), pre-converted        1200-1900

HTTP pass-through, proxy CPU per request, two runs (CPU ticks: 5 us resolution):
header identity 175-215 us; verified JWT alone +2..+6%; a 3-clause access.when alone
+2..+6%; both +7..+14% (target <= 10%: met in one run of two on this box).

The Rust binding converts each Python value at 3-4 us (strings, floats, lists), which
dominates; cel-expr-python also type-checks at load (unknown fields, wrong types are
`validate` errors), which the Rust binding does not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import REPO, cpu_seconds, free_port, spawn, spawn_callwarden, wait_port

sys.path.insert(0, str(REPO))

from proxy.conditions.activation import Facts, values_for
from proxy.conditions.cel import Condition
from proxy.config.schema import JwtSpec
from proxy.identity.jwt import Verifier, source_for
from proxy.model.call import Caller, McpCall, Request
from tests.identity.keys import AUDIENCE, ISSUER, SigningKey, jwks

EXPR = ('tool.arguments.amount <= ("supervisor" in identity.roles ? 5000 : 500)'
        ' && identity.claims.region == "eu" && tool.name == "refund"')
NESTED = {
    "tool": {"name": "refund", "arguments": {"amount": 120, "currency": "EUR", "order": "A1"}},
    "identity": {"tenant": "acme", "roles": ["support"],
                 "claims": {"region": "eu", "sub": "user-1", "iss": ISSUER}},
}
# Rust/cel-python have no dotted declarations: the same expression over nested maps.
NESTED_EXPR = EXPR


def per_call_us(fn: Any, n: int) -> float:
    for _ in range(min(n, 200)):
        fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


async def jwt_table(tmp: Path) -> list[tuple[str, float]]:
    rows = []
    keys = [SigningKey.make(f"k-{alg}", alg) for alg in ("RS256", "ES256", "EdDSA")]
    (tmp / "jwks.json").write_bytes(jwks(*keys))
    spec = JwtSpec(issuer=ISSUER, audiences=[AUDIENCE], jwks_file=str(tmp / "jwks.json"),
                   algorithms=["RS256", "ES256", "EdDSA"])
    for key in keys:
        verifier = Verifier(spec, source_for(spec))
        tokens = [key.sign({"roles": ["support"], "tenant": "acme", "n": i}) for i in range(400)]
        t0 = time.perf_counter()
        for t in tokens:
            await verifier.verify(t)
        rows.append((f"verify {key.alg}, first sight", (time.perf_counter() - t0) / 400 * 1e6))
        token = tokens[0]
        n = 20000
        t0 = time.perf_counter()
        for _ in range(n):
            await verifier.verify(token)
        rows.append((f"verify {key.alg}, cached token", (time.perf_counter() - t0) / n * 1e6))
    return rows


def cel_table(n: int) -> list[tuple[str, float]]:
    rows = []
    cond = Condition.build("bench", EXPR, "tool")
    from multidict import CIMultiDict, CIMultiDictProxy

    caller = Caller("acme", frozenset({"support"}), "t", "", NESTED["identity"]["claims"])
    call = McpCall("r", "mcp", caller, Request("POST", "/", headers=CIMultiDictProxy(
        CIMultiDict())))
    facts = Facts("refund", NESTED["tool"]["arguments"])
    values = values_for(cond, call, facts)
    assert cond.evaluate(values).holds
    rows.append(("cel-expr-python: evaluate, values built (memo hit)", per_call_us(
        lambda: cond.evaluate(values), n)))
    rows.append(("cel-expr-python: runtime alone, every call (no memo)", per_call_us(
        lambda: cond.run(values), n)))
    rows.append(("cel-expr-python: build values + evaluate (in use)", per_call_us(
        lambda: cond.evaluate(values_for(cond, call, facts)), n)))
    args = NESTED["tool"]["arguments"]
    varied = [Facts("refund", {**args, "amount": i}) for i in range(n)]
    it = iter(varied * 4)
    rows.append(("  the same, a new amount every call (memo misses)", per_call_us(
        lambda: cond.evaluate(values_for(cond, call, next(it))), n)))
    try:
        import cel as rust_cel

        prog = rust_cel.compile(NESTED_EXPR)
        assert prog.execute(NESTED) is True
        rows.append(("common-expression-language (Rust): execute(dict)", per_call_us(
            lambda: prog.execute(NESTED), n)))
    except ImportError:
        rows.append(("common-expression-language: not installed (pip install .[bench])",
                     float("nan")))
    try:
        import celpy

        env = celpy.Environment()
        program = env.program(env.compile(NESTED_EXPR))
        act = {k: celpy.json_to_cel(v) for k, v in NESTED.items()}
        assert bool(program.evaluate(act)) is True
        rows.append(("cel-python: evaluate (pre-converted)", per_call_us(
            lambda: program.evaluate(act), max(n // 20, 50))))
    except ImportError:
        rows.append(("cel-python: not installed (pip install .[bench])", float("nan")))
    return rows


RULES = """
version: 1
identity:
  jwt: {{issuer: "{iss}", audiences: ["{aud}"], jwks_file: "{jwks}", algorithms: [ES256]}}
routes:
  - name: plain
    match: {{path_prefix: /plain}}
    upstream: http://127.0.0.1:{up}
    identity: headers
    access: {{roles: [support]}}
  - name: jwt-only
    match: {{path_prefix: /jwt-only}}
    upstream: http://127.0.0.1:{up}
    access: {{roles: [support]}}
  - name: when-only
    match: {{path_prefix: /when-only}}
    upstream: http://127.0.0.1:{up}
    identity: headers
    access:
      roles: [support]
      when: >-
        identity.tenant == "acme" && request.method == "GET"
        && (request.headers["x-env"] == "prod" || "supervisor" in identity.roles)
  - name: verified
    match: {{path_prefix: /verified}}
    upstream: http://127.0.0.1:{up}
    access:
      roles: [support]
      when: >-
        identity.claims.region == "eu" && request.method == "GET"
        && (request.headers["x-env"] == "prod" || "supervisor" in identity.roles)
"""


async def load(url: str, headers: dict[str, str], calls: int, concurrency: int) -> int:
    todo = iter(range(calls))
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def caller() -> None:
            nonlocal done
            for _ in todo:
                async with s.get(url, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{url}: {r.status} {await r.text()}")
                done += 1

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done


def http_table(tmp: Path, calls: int, concurrency: int, rounds: int) -> list[tuple[str, float]]:
    key = SigningKey.make("bench", "ES256")
    (tmp / "http-jwks.json").write_bytes(jwks(key))
    up, cw = free_port(), free_port()
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES.format(
        iss=ISSUER, aud=AUDIENCE, jwks=tmp / "http-jwks.json", up=up))
    token = key.sign({"roles": ["support"], "tenant": "acme", "region": "eu"}, exp=int(
        time.time()) + 3600)
    targets = {
        "header identity, no condition": ("/plain/x", {"X-Caller-Role": "support",
                                                        "X-Tenant-ID": "acme"}),
        "verified JWT, no condition": ("/jwt-only/x", {"Authorization": f"Bearer {token}",
                                                       "X-Env": "prod"}),
        "header identity + 3-clause access.when": ("/when-only/x", {
            "X-Caller-Role": "support", "X-Tenant-ID": "acme", "X-Env": "prod"}),
        "verified JWT + 3-clause access.when": ("/verified/x", {
            "Authorization": f"Bearer {token}", "X-Env": "prod"}),
    }
    procs = [spawn("bench/upstream.py", str(up))]
    cpu: dict[str, list[float]] = {k: [] for k in targets}
    try:
        wait_port(up)
        procs.append(spawn_callwarden(str(rules), cw))
        wait_port(cw)
        pid = procs[1].pid
        for _ in range(rounds):  # interleaved: drift hits both alike
            for name, (path, headers) in targets.items():
                url = f"http://127.0.0.1:{cw}{path}"
                asyncio.run(load(url, headers, 200, concurrency))
                before = cpu_seconds(pid)
                n = asyncio.run(load(url, headers, calls, concurrency))
                cpu[name].append((cpu_seconds(pid) - before) / n * 1e6)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    return [(name, statistics.median(v)) for name, v in cpu.items()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=20000, help="iterations of the micro benches")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print("JWT verification, us per call")
    for name, us in asyncio.run(jwt_table(tmp)):
        print(f"  {name:<52} {us:9.2f}")
    print(f"CEL, typical three-clause condition, us per call:\n  {EXPR}")
    for name, us in cel_table(args.n):
        print(f"  {name:<52} {us:9.2f}")
    rows = http_table(tmp, args.calls, args.concurrency, args.rounds)
    print(f"HTTP pass-through, proxy CPU us per request (median of {args.rounds} rounds of "
          f"{args.calls} calls, {args.concurrency} concurrent callers)")
    base = rows[0][1]
    for name, us in rows:
        print(f"  {name:<52} {us:9.1f}  {100 * (us / base - 1):+6.1f}%")


if __name__ == "__main__":
    main()
