"""The command line as a new user meets it: one-line errors for bad or busy addresses,
help that says what each option does."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.cli import address_problem, build_parser

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize(
    ("value", "ok"),
    [("127.0.0.1:15001", True), ("[::1]:80", True), (":8080", True), ("localhost", False),
     ("127.0.0.1:http", False), ("127.0.0.1:70000", False), ("[::1:80", False)],
)
def test_address_problem(value: str, ok: bool) -> None:
    assert (address_problem(value) is None) is ok


def test_run_with_a_host_and_no_port_is_one_line() -> None:
    r = cli("run", "--rules", "rules", "--listen", "localhost")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "HOST:PORT" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_on_a_busy_port_is_one_line(busy_port: int) -> None:
    r = cli("run", "--rules", "rules", "--listen", f"127.0.0.1:{busy_port}", "--admin",
            "127.0.0.1:0")
    assert r.returncode == 1
    assert "cannot listen" in r.stderr and "Traceback" not in r.stderr


def test_demo_on_busy_ports_says_which_and_how_to_move(busy_port: int) -> None:
    r = cli("demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--backend-port",
            str(busy_port - 1), "--duration", "1")
    assert r.returncode == 1
    assert "--backend-port" in r.stderr and "Traceback" not in r.stderr


def test_help_describes_every_command_and_run_option() -> None:
    parser = build_parser()
    top = parser.format_help()
    for command in ("run", "validate", "explain", "replay", "pin", "demo"):
        assert f"    {command} " in top
    run = cli("run", "--help").stdout
    for option in ("--rules", "--listen", "--admin", "--drain-s", "--log-level"):
        assert option in run
    assert "default: 127.0.0.1:15001" in run and "SIGHUP" in run
