"""`callwarden` command line: run, validate, explain, replay, pin, demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from proxy.config.load import RulesError, load_rules


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(message)s" if level.upper() != "DEBUG" else "%(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def _run_loop(coro: object) -> int:
    try:
        import uvloop  # optional speed extra

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


def address_problem(value: str | None) -> str | None:
    """Why a listen address is unusable, in one line, or None."""
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        return f"must be HOST:PORT, e.g. 127.0.0.1:15001 (got {value!r})"
    if host.startswith("[") != host.endswith("]"):
        return f"an IPv6 host goes in brackets, e.g. [::1]:15001 (got {value!r})"
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from proxy.app import serve

    if not args.rules:
        print("callwarden run: --rules PATH (or CALLWARDEN_RULES) is required", file=sys.stderr)
        return 2
    for flag, value in (("--listen", args.listen), ("--admin", args.admin)):
        if (problem := address_problem(value)) is not None:
            print(f"callwarden run: {flag} {problem}", file=sys.stderr)
            return 2
    _setup_logging(args.log_level)
    return _run_loop(serve(args.rules, args.listen, args.admin, args.drain_s))


def validation_problems(path: str) -> list[str]:
    """Every problem `run` would refuse to start with."""
    try:
        loaded = load_rules(path)
    except RulesError as exc:
        return exc.problems
    from proxy.integrity.check import pin_problems

    problems: list[str] = pin_problems(loaded.rules)[0]
    try:
        from proxy.credentials.rules_check import literal_credentials
    except ImportError:  # pragma: no cover - credentials module not installed
        return problems
    if loaded.rules.environment == "production":
        first = loaded.files[0]
        problems.extend(f"{first}: {p}" for p in literal_credentials(loaded.rules))
    return problems


def validation_warnings(path: str) -> list[str]:
    """Publication warnings that do not refuse the rules (e.g. tools pinned undescribed)."""
    from proxy.integrity.check import pin_problems

    try:
        return pin_problems(load_rules(path).rules)[1]
    except RulesError:
        return []


async def unresolved_secrets(path: str) -> list[str]:
    """Every `${env:..}`, `${file:..}`, `${vault:..}` the rules inject, resolved once as
    `run` would at start; the problems name the reference, never a value."""
    from proxy.app import build_state

    state = build_state(load_rules(path))  # compiling declares each route's references
    store = state.services.secrets
    await store.start()
    try:
        return await store.prefetch()
    finally:
        await store.close()


def cmd_validate(args: argparse.Namespace) -> int:
    problems = validation_problems(args.path)
    if args.resolve and not problems:
        problems = [f"secret: {p}" for p in asyncio.run(unresolved_secrets(args.path))]
    for w in validation_warnings(args.path):
        print(f"warning: {w}")
    if problems:
        for p in problems:
            print(p)
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    loaded = load_rules(args.path)
    print(f"ok: {len(loaded.rules.routes)} routes, digest {loaded.digest[:12]}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from proxy.explain import explain

    try:
        result = asyncio.run(explain(args))
    except RulesError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            if value not in (None, "", [], {}):
                print(f"{key:10} {value}")
    return 0 if result["verdict"] == "allow" else 1


def cmd_replay(args: argparse.Namespace) -> int:
    """Exit 1 when a call that was allowed would now be denied (a CI gate for rules)."""
    from proxy.replay import dry_compile, read_log, render, replay

    try:
        compiled = dry_compile(load_rules(args.rules))
    except RulesError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 2
    try:
        files = [open(f, encoding="utf-8") for f in args.log]  # noqa: SIM115
    except OSError as exc:
        print(f"cannot read decision log: {exc}", file=sys.stderr)
        return 2
    try:
        records = (r for f in files for r in read_log(f))
        report = asyncio.run(replay(compiled, records, args.examples))
    finally:
        for f in files:
            f.close()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if report["newly_denied"]["count"] else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from proxy.demo.run import run_demo

    _setup_logging(args.log_level)
    for flag, value in (("--listen", args.listen), ("--admin", args.admin)):
        if (problem := address_problem(value)) is not None:
            print(f"callwarden demo: {flag} {problem}", file=sys.stderr)
            return 2
    return _run_loop(run_demo(args.listen, args.admin, args.duration, args.backend_port))


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(prog="callwarden", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="serve the proxy on a rules file or folder", formatter_class=fmt,
        description="Serve: SIGTERM drains in-flight calls, SIGHUP reloads the rules "
        "(they are also polled; CALLWARDEN_RULES_POLL_S sets the interval, 0 turns it off).",
    )
    run.add_argument("--rules", default=env("CALLWARDEN_RULES"),
                     help="rules YAML file or folder of them (env CALLWARDEN_RULES)")
    run.add_argument("--listen", default=env("CALLWARDEN_LISTEN", "127.0.0.1:15001"),
                     help="HOST:PORT of the proxy (env CALLWARDEN_LISTEN)")
    run.add_argument("--admin", default=env("CALLWARDEN_ADMIN", "127.0.0.1:15090"),
                     help="HOST:PORT of /healthz, /readyz, /metrics, /rules "
                     "(env CALLWARDEN_ADMIN)")
    run.add_argument("--drain-s", type=float, default=10.0,
                     help="seconds in-flight calls get to finish on SIGTERM")
    run.add_argument("--log-level", default=env("CALLWARDEN_LOG_LEVEL", "INFO"),
                     help="DEBUG, INFO, WARNING or ERROR (env CALLWARDEN_LOG_LEVEL)")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check rules exactly as run would")
    val.add_argument("path")
    val.add_argument("--resolve", action="store_true",
                     help="also resolve every secret reference the rules inject (env, file, "
                     "Vault) and report those that fail")
    val.set_defaults(func=cmd_validate)

    ex = sub.add_parser("explain", help="dry-run one call through the guards")
    ex.add_argument("--rules", required=True)
    ex.add_argument("--route", required=True)
    ex.add_argument("--tenant")
    ex.add_argument("--role")
    ex.add_argument("--claims", help="verified token claims as JSON (identity.claims)")
    what = ex.add_mutually_exclusive_group(required=True)
    what.add_argument("--sql")
    what.add_argument("--request", help="JSON file: {method, path, headers, body}")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_explain)

    rp = sub.add_parser("replay", help="re-judge a decision log under candidate rules")
    rp.add_argument("--rules", required=True, help="the candidate rules")
    rp.add_argument("--log", required=True, action="append", help="decision log (repeatable)")
    rp.add_argument("--examples", type=int, default=3, help="examples per group")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_replay)

    demo = sub.add_parser("demo", help="the proxy with rules/ and embedded demo backends",
                          formatter_class=fmt)
    demo.add_argument("--listen", default="127.0.0.1:15001", help="HOST:PORT of the proxy")
    demo.add_argument("--admin", default="127.0.0.1:15090", help="HOST:PORT of the admin API")
    demo.add_argument("--backend-port", type=int, default=None,
                      help="first of three consecutive loopback ports for the demo's "
                      "backends (default 18081-18083)")
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    demo.set_defaults(func=cmd_demo)

    from proxy.integrity.pin import add_parser as add_pin

    add_pin(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
