"""Hot reload: swaps under load, ConfigMap symlink swaps, bad files, SIGHUP, and the
audit-then-enforce rollout of a guard."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml

from proxy.reload import RulesWatcher, fingerprint


def route(url: str, name: str, prefix: str, **extra) -> dict:
    return {"name": name, "match": {"path_prefix": prefix}, "upstream": url, **extra}


def dump(path: Path, routes: list[dict], **top) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, **top, "routes": routes}, sort_keys=False))
    return path


async def test_reload_under_load_keeps_calls_flowing(upstream, write_rules, start_proxy):
    """Concurrent calls while the rules swap 30 times: /api never fails; /gate answers only
    what the rules in force say (200 in v1, 403 PERMISSION_DENIED in v2)."""
    _, url = upstream
    v1 = [route(url, "api", "/api"), route(url, "gate", "/gate", access={"roles": ["x"]})]
    v2 = [route(url, "api", "/api"), route(url, "gate", "/gate", access={"roles": ["y"]}),
          route(url, "extra", "/extra")]
    path = write_rules(v1)
    px = await start_proxy(path)
    watcher = RulesWatcher(px.state, str(path))
    seen: dict[str, set] = {"api": set(), "gate": set()}
    done = asyncio.Event()

    async def client(i: int) -> int:
        n = 0
        while not done.is_set() or n < 5:
            which = "api" if (n + i) % 2 else "gate"
            async with px.session.post(
                f"{px.url}/{which}/x", json={"n": n}, headers={"X-Caller-Role": "x"}
            ) as r:
                await r.read()
                seen[which].add((r.status, r.headers.get("X-CallWarden-Error-Code")))
            n += 1
        return n

    clients = [asyncio.create_task(client(i)) for i in range(8)]
    digests = set()
    for i in range(30):
        dump(path, v2 if i % 2 == 0 else v1)
        assert await watcher.reload("test")
        digests.add(px.state.compiled.loaded.digest)
        await asyncio.sleep(0.005)
    done.set()
    counts = await asyncio.gather(*clients)
    assert len(digests) == 2 and sum(counts) >= 40
    assert seen["api"] == {(200, None)}
    assert seen["gate"] <= {(200, None), (403, "PERMISSION_DENIED")}
    assert px.metric("callwarden_rules_reloads_total", result="ok") == 31  # start + 30
    assert px.metric("callwarden_rules_reloads_total", result="error") == 0


def configmap(folder: Path, version: str, text: str) -> None:
    """What the kubelet does: write a new timestamped folder, re-point `..data` atomically."""
    real = folder / f"..2026_01_01_{version}"
    real.mkdir()
    (real / "rules.yaml").write_text(text)
    tmp = folder / "..data_tmp"
    tmp.symlink_to(real.name)
    os.replace(tmp, folder / "..data")
    link = folder / "rules.yaml"
    if not link.is_symlink():
        link.symlink_to("..data/rules.yaml")


async def test_configmap_symlink_swap_is_picked_up(upstream, tmp_path, start_proxy):
    _, url = upstream
    cm = tmp_path / "cm"
    cm.mkdir()
    doc = {"version": 1, "routes": [route(url, "api", "/api")]}
    configmap(cm, "v1", yaml.safe_dump(doc))
    for rules_path in (cm, cm / "rules.yaml"):  # a folder, or the file inside it
        px = await start_proxy(rules_path)
        watcher = RulesWatcher(px.state, str(rules_path), interval_s=0.05)
        assert not await watcher.check()
        async with px.session.get(px.url + "/new/x") as r:
            assert r.status == 403
        doc["routes"].append(route(url, "new", "/new"))
        configmap(cm, f"v{len(doc['routes'])}-{rules_path.name}", yaml.safe_dump(doc))
        assert await watcher.check()
        async with px.session.get(px.url + "/new/x") as r:
            assert r.status == 200
        doc["routes"].pop()
        configmap(cm, f"back-{rules_path.name}", yaml.safe_dump(doc))


async def test_poller_reloads_without_being_asked(upstream, write_rules, start_proxy):
    _, url = upstream
    path = write_rules([route(url, "api", "/api")])
    px = await start_proxy(path)
    watcher = RulesWatcher(px.state, str(path), interval_s=0.02)
    watcher.start(sighup=False)
    try:
        before = px.state.compiled.loaded.digest
        dump(path, [route(url, "api", "/api"), route(url, "two", "/two")])
        for _ in range(500):  # bounded: ~10 s at most
            if px.state.compiled.loaded.digest != before:
                break
            await asyncio.sleep(0.02)
        assert "two" in px.state.compiled.routes
    finally:
        await watcher.stop()


async def test_broken_file_keeps_old_rules_and_reports(upstream, write_rules, start_proxy, caplog):
    _, url = upstream
    path = write_rules([route(url, "api", "/api")])
    px = await start_proxy(path)
    digest = px.state.compiled.loaded.digest
    watcher = RulesWatcher(px.state, str(path))
    dump(path, [route(url, "api", "/api", limits={"timeout_ms": -5})])
    with caplog.at_level(logging.ERROR, logger="callwarden"):
        assert not await watcher.reload("test")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert str(path) in errors[0] and "routes[0].limits.timeout_ms" in errors[0]
    assert px.metric("callwarden_rules_reloads_total", result="error") == 1
    async with px.session.get(px.admin + "/rules") as r:
        body = await r.json()
    assert body["digest"] == digest
    assert "routes[0].limits.timeout_ms" in body["last_error"]
    async with px.session.get(px.admin + "/readyz") as r:
        assert r.status == 200
    async with px.session.get(px.url + "/api/x") as r:
        assert r.status == 200
    path.write_text("routes: [unclosed")  # invalid YAML is reported the same way
    assert not await watcher.reload("test")
    assert px.metric("callwarden_rules_reloads_total", result="error") == 2
    dump(path, [route(url, "api", "/api")])  # restored to the rules in force: error clears
    assert await watcher.reload("test")
    async with px.session.get(px.admin + "/rules") as r:
        body = await r.json()
    assert body["last_error"] is None and body["digest"] == digest
    path.write_text("routes: [unclosed")
    assert not await watcher.reload("test")
    dump(path, [route(url, "api", "/api"), route(url, "b", "/b")])  # fixed: error clears
    assert await watcher.reload("test")
    async with px.session.get(px.admin + "/rules") as r:
        body = await r.json()
    assert body["last_error"] is None and body["digest"] != digest


async def test_audit_one_guard_then_enforce(upstream, write_rules, start_proxy):
    """Roll out an access rule: audited first (counted, call proceeds), then enforced."""
    _, url = upstream
    audited = route(url, "crm", "/crm", access={"roles": ["admin"]},
                    guard_modes={"access": "audit"})
    path = write_rules([audited])
    px = await start_proxy(path)
    async with px.session.get(px.admin + "/rules") as r:
        summary = (await r.json())["routes"][0]
    assert summary["mode"] == "enforce" and summary["guard_modes"] == {"access": "audit"}
    for role in ("intern", "intern", "admin"):
        async with px.session.get(px.url + "/crm/x", headers={"X-Caller-Role": role}) as r:
            assert r.status == 200
    labels = {"route": "crm", "guard": "access", "error_code": "PERMISSION_DENIED"}
    assert px.metric("callwarden_audit_would_deny_total", **labels) == 2
    dump(path, [{**audited, "guard_modes": {}}])
    assert await RulesWatcher(px.state, str(path)).reload("test")
    async with px.session.get(px.url + "/crm/x", headers={"X-Caller-Role": "intern"}) as r:
        assert r.status == 403
        assert r.headers["X-CallWarden-Error-Code"] == "PERMISSION_DENIED"
    assert px.metric("callwarden_audit_would_deny_total", **labels) == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sighup_reloads_a_running_process(upstream, write_rules, tmp_path):
    _, url = upstream
    path = write_rules([route(url, "api", "/api")])
    proxy_port, admin_port = free_port(), free_port()
    env = {**os.environ, "CALLWARDEN_RULES_POLL_S": "0"}  # only SIGHUP may reload
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "run", "--rules", str(path),
         "--listen", f"127.0.0.1:{proxy_port}", "--admin", f"127.0.0.1:{admin_port}"],
        env=env, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent,
    )
    admin = f"http://127.0.0.1:{admin_port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def rules() -> dict | None:
                for _ in range(200):  # bounded: ~20 s
                    try:
                        async with session.get(admin + "/rules") as r:
                            return await r.json()
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.1)
                return None

            first = await rules()
            assert first is not None, "proxy did not start"
            dump(path, [route(url, "api", "/api"), route(url, "two", "/two")])
            await asyncio.sleep(0.3)
            assert (await rules())["digest"] == first["digest"]  # no poller: unchanged
            proc.send_signal(signal.SIGHUP)
            for _ in range(100):
                now = await rules()
                if now and now["digest"] != first["digest"]:
                    break
                await asyncio.sleep(0.1)
            assert [r["name"] for r in now["routes"]] == ["api", "two"]
            async with session.get(f"http://127.0.0.1:{proxy_port}/two/x") as r:
                assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"rules reloaded (SIGHUP)" in err


def test_fingerprint_sees_edits_and_link_swaps(tmp_path):
    cm = tmp_path / "cm"
    cm.mkdir()
    configmap(cm, "v1", "version: 1\n")
    before = fingerprint(cm)
    assert fingerprint(cm) == before
    configmap(cm, "v2", "version: 1\n")  # same bytes, new folder: still a change
    assert fingerprint(cm) != before


async def test_limiter_and_breaker_state_survive_a_reload_of_other_routes(
    upstream, write_rules, start_proxy
):
    _, url = upstream
    limited = route(url, "limited", "/limited", limits={"rate": {"per_minute": 3}})
    fragile = route(url, "fragile", "/fragile",
                    limits={"breaker": {"failures": 2, "reset_after_s": 600}})
    path = write_rules([limited, fragile, route(url, "other", "/other")])
    px = await start_proxy(path)
    watcher = RulesWatcher(px.state, str(path))
    for _ in range(3):
        async with px.session.get(px.url + "/limited/x") as r:
            assert r.status == 200
    for _ in range(2):
        async with px.session.get(px.url + "/fragile/status/503") as r:
            assert r.status == 503 and "X-CallWarden-Error-Code" not in r.headers

    async def codes() -> tuple[str | None, str | None]:
        out = []
        for name in ("limited", "fragile"):
            async with px.session.get(f"{px.url}/{name}/x") as r:
                out.append(r.headers.get("X-CallWarden-Error-Code"))
        return out[0], out[1]

    assert await codes() == ("RATE_LIMITED", "CIRCUIT_OPEN")
    # Another route changes, one is added: the spent quota and the open breaker stay.
    dump(path, [limited, fragile, route(url, "other", "/other", access={"roles": ["x"]}),
                route(url, "new", "/new")])
    assert await watcher.reload("test")
    assert await codes() == ("RATE_LIMITED", "CIRCUIT_OPEN")
    # Their own limits change: fresh state, as the new spec asks.
    dump(path, [{**limited, "limits": {"rate": {"per_minute": 5}}},
                {**fragile, "limits": {"breaker": {"failures": 3, "reset_after_s": 600}}}])
    assert await watcher.reload("test")
    assert await codes() == (None, None)


async def test_signals_right_after_the_port_opens_do_not_kill(upstream, write_rules):
    """SIGHUP the moment the proxy port accepts (a config reloader, a probe): the process
    reloads and serves on; SIGTERM then drains and exits 0. Before the fix the signal
    handlers came after the listeners and the default action killed the process."""
    _, url = upstream
    path = write_rules([route(url, "api", "/api")])
    proxy_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "run", "--rules", str(path),
         "--listen", f"127.0.0.1:{proxy_port}", "--admin", f"127.0.0.1:{free_port()}"],
        env={**os.environ, "CALLWARDEN_RULES_POLL_S": "0"}, stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        for _ in range(4000):  # bounded: ~20 s; tight so the signal lands during start-up
            try:
                socket.create_connection(("127.0.0.1", proxy_port), timeout=0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGHUP)
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{proxy_port}/api/x") as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
        assert proc.poll() is None, "the early SIGHUP killed the process"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]
