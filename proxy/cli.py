"""`callwarden` command line: run, validate, explain, demo."""

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


def cmd_run(args: argparse.Namespace) -> int:
    from proxy.app import serve

    if not args.rules:
        print("callwarden run: --rules PATH (or CALLWARDEN_RULES) is required", file=sys.stderr)
        return 2
    _setup_logging(args.log_level)
    return _run_loop(serve(args.rules, args.listen, args.admin, args.drain_s))


def validation_problems(path: str) -> list[str]:
    """Every problem `run` would refuse to start with."""
    try:
        loaded = load_rules(path)
    except RulesError as exc:
        return exc.problems
    problems: list[str] = []
    try:
        from proxy.credentials.rules_check import literal_credentials
    except ImportError:  # pragma: no cover - credentials module not installed
        return problems
    if loaded.rules.environment == "production":
        first = loaded.files[0]
        problems.extend(f"{first}: {p}" for p in literal_credentials(loaded.rules))
    return problems


def cmd_validate(args: argparse.Namespace) -> int:
    problems = validation_problems(args.path)
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


def cmd_demo(args: argparse.Namespace) -> int:
    from proxy.demo.run import run_demo

    _setup_logging(args.log_level)
    return _run_loop(run_demo(args.listen, args.admin, args.duration))


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="callwarden", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve")
    run.add_argument("--rules", default=env("CALLWARDEN_RULES"))
    run.add_argument("--listen", default=env("CALLWARDEN_LISTEN", "127.0.0.1:15001"))
    run.add_argument("--admin", default=env("CALLWARDEN_ADMIN", "127.0.0.1:15090"))
    run.add_argument("--drain-s", type=float, default=10.0, help="graceful drain on SIGTERM")
    run.add_argument("--log-level", default=env("CALLWARDEN_LOG_LEVEL", "INFO"))
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check rules exactly as run would")
    val.add_argument("path")
    val.set_defaults(func=cmd_validate)

    ex = sub.add_parser("explain", help="dry-run one call through the guards")
    ex.add_argument("--rules", required=True)
    ex.add_argument("--route", required=True)
    ex.add_argument("--tenant")
    ex.add_argument("--role")
    what = ex.add_mutually_exclusive_group(required=True)
    what.add_argument("--sql")
    what.add_argument("--request", help="JSON file: {method, path, headers, body}")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_explain)

    demo = sub.add_parser("demo", help="proxy + embedded demo backends")
    demo.add_argument("--listen", default="127.0.0.1:15001")
    demo.add_argument("--admin", default="127.0.0.1:15090")
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.add_argument("--log-level", default="INFO")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
