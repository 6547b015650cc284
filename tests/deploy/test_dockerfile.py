"""The container image without a Docker engine: a lint of the Dockerfile, and the image's
own install and start steps replayed in a clean virtualenv (wheel build, install from the
wheels only, `callwarden run` configured by the image's ENV, its HEALTHCHECK, SIGTERM)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.deploy_assets import REPO

DOCKERFILE = REPO / "Dockerfile"
Instruction = tuple[str, str]


def parse(text: str) -> list[Instruction]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "dangling line continuation"
    return out


INSTRUCTIONS = parse(DOCKERFILE.read_text())


def args_of(name: str) -> list[str]:
    return [rest for word, rest in INSTRUCTIONS if word == name]


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in INSTRUCTIONS:
        if instruction[0] == "FROM":
            result.append([])
        assert result, "first instruction must be FROM"
        result[-1].append(instruction)
    return result


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in stage:
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def healthcheck_command() -> list[str]:
    (rest,) = args_of("HEALTHCHECK")
    _, _, cmd = rest.partition("CMD ")
    command = json.loads(cmd)
    assert isinstance(command, list)
    return command


def test_multi_stage_with_pinned_slim_python() -> None:
    froms = args_of("FROM")
    assert len(froms) >= 2
    names = []
    for rest in froms:
        parts = rest.split()
        image = parts[0]
        assert not image.startswith("--platform"), "no platform pinning in the Dockerfile"
        assert "latest" not in image
        assert re.fullmatch(
            r"python:3\.(1[1-9])\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image
        ) or re.fullmatch(r"python@sha256:[0-9a-f]{64}", image), image
        if len(parts) == 3:
            assert parts[1].upper() == "AS"
            names.append(parts[2])
    build = names[0]
    final = stages()[-1]
    assert any(f"from={build}" in rest for _, rest in final), "final stage uses the build stage"
    assert any("pip wheel" in rest for word, rest in stages()[0] if word == "RUN")


def test_no_remote_add_and_copy_is_scoped() -> None:
    assert args_of("ADD") == [], "use COPY; ADD can fetch URLs and unpack archives"
    for rest in args_of("COPY"):
        assert not re.search(r"https?://", rest)
        assert rest.split()[0] != ".", "copy only what the build needs"


def test_final_stage_runs_as_numeric_non_root_user() -> None:
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000
    assert not gid or (gid.isdigit() and int(gid) > 0)
    words = [word for word, _ in final]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")


def test_read_only_root_filesystem_settings() -> None:
    env = env_of(stages()[-1])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env.get("TMPDIR", "/tmp") == "/tmp"
    assert env["CALLWARDEN_RULES"] == "/etc/callwarden/rules"
    assert env["CALLWARDEN_LISTEN"].endswith(":15001")
    assert env["CALLWARDEN_ADMIN"].endswith(":15090")


def test_entrypoint_expose_healthcheck() -> None:
    (entrypoint,) = args_of("ENTRYPOINT")
    assert json.loads(entrypoint) == ["callwarden", "run"]
    exposed = {port for rest in args_of("EXPOSE") for port in rest.split()}
    assert {"15001", "15090"} <= exposed
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2] and "curl" not in command[2]
    compile(command[2], "<healthcheck>", "exec")
    (rest,) = args_of("HEALTHCHECK")
    assert re.search(r"--timeout=\d+s", rest) and re.search(r"--interval=\d+s", rest)


def test_dockerignore_keeps_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "**", "deny everything, then allow what the build copies"
    for path in ("pyproject.toml", "proxy/"):
        assert f"!{path}" in patterns
    copied = {rest.split()[0] for rest in args_of("COPY") if "--from" not in rest}
    copied |= {s for rest in args_of("COPY") for s in rest.split()[:-1] if "--" not in s}
    for source in copied:
        assert any(p.strip("!/") == source.strip("./") for p in patterns), source


# --- the image's install and start steps in a clean virtualenv -------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stage 1 (`pip wheel` of the repo with the speed extra) and stage 2 (install from the
    wheels only) into a venv that shares nothing with the development one."""
    root = tmp_path_factory.mktemp("image")
    wheels, venv = root / "wheels", root / "venv"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    quiet = {"capture_output": True, "text": True, "timeout": 300}
    built = subprocess.run([*pip, "wheel", "-q", "--wheel-dir", str(wheels), f"{REPO}[speed]"],
                           **quiet)
    assert built.returncode == 0, built.stderr[-2000:]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    installed = subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-index",
         "--find-links", str(wheels), "callwarden[speed]"], **quiet)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv


def test_installed_image_starts_serves_health_and_stops_on_sigterm(image_venv: Path) -> None:
    listen, admin = free_port(), free_port()
    env = {
        "PATH": f"{image_venv / 'bin'}:/usr/bin:/bin",
        "HOME": "/nonexistent",
        **env_of(stages()[-1]),
        "CALLWARDEN_RULES": str(REPO / "rules"),  # the image mounts rules at this variable
        "CALLWARDEN_LISTEN": f"127.0.0.1:{listen}",  # loopback only in tests
        "CALLWARDEN_ADMIN": f"127.0.0.1:{admin}",
        "DEMO_CRM_TOKEN": "demo-token-for-tests",  # referenced by the example rules
    }
    entrypoint = json.loads(args_of("ENTRYPOINT")[0])
    proc = subprocess.Popen(entrypoint, env=env, cwd="/tmp", stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while get(f"http://127.0.0.1:{admin}/healthz") != 200:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "no /healthz within 30 s"
            time.sleep(0.1)
        assert get(f"http://127.0.0.1:{admin}/readyz") == 200
        command = healthcheck_command()
        check = subprocess.run([str(image_venv / "bin" / "python"), *command[1:]], env=env,
                               capture_output=True, text=True, timeout=10)
        assert check.returncode == 0, check.stderr
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, output[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in output
    assert "demo-token-for-tests" not in output, "secrets never reach logs"


def test_healthcheck_fails_when_nothing_listens(image_venv: Path) -> None:
    command = healthcheck_command()
    env = {"CALLWARDEN_ADMIN": f"127.0.0.1:{free_port()}", "PATH": os.environ["PATH"]}
    check = subprocess.run([str(image_venv / "bin" / "python"), *command[1:]], env=env,
                           capture_output=True, timeout=10)
    assert check.returncode != 0
