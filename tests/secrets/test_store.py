"""Resolving env and file references, rotation (incl. a Kubernetes ..data symlink swap),
route scoping, and values that never show in repr or errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from proxy.config.refs import parse_template
from proxy.config.schema import SecretsSpec
from proxy.model.errors import ErrorCode, ProxyError
from proxy.secrets import Secret, SecretStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_secret_never_shows() -> None:
    s = Secret("hunter2-value")
    for text in (repr(s), str(s), f"{s}", repr([s]), repr({"k": s})):
        assert "hunter2" not in text
    assert s.reveal() == "hunter2-value" and s == Secret("hunter2-value")
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(s)


async def test_env_read_at_resolve_time(monkeypatch: pytest.MonkeyPatch) -> None:
    store = SecretStore(SecretsSpec())
    monkeypatch.setenv("CW_TEST_TOKEN", "first-value")
    assert await store.resolve("Bearer ${env:CW_TEST_TOKEN}") == "Bearer first-value"
    monkeypatch.setenv("CW_TEST_TOKEN", "second-value")
    assert store.resolve_cached("${env:CW_TEST_TOKEN}") == "second-value"
    monkeypatch.delenv("CW_TEST_TOKEN")
    with pytest.raises(ProxyError) as err:
        await store.resolve("${env:CW_TEST_TOKEN}")
    assert err.value.code is ErrorCode.INTERNAL_ERROR
    assert str(err.value) == "INTERNAL_ERROR: secret ${env:CW_TEST_TOKEN} is not set"
    assert store.resolve_cached("${env:CW_TEST_TOKEN}") is None


async def test_file_rotation_polled(tmp_path: Path) -> None:
    clock = Clock()
    store = SecretStore(SecretsSpec(file_poll_s=2), clock=clock)
    path = tmp_path / "token"
    path.write_text("v1-secret\n")
    ref = f"${{file:{path}}}"
    assert await store.resolve(ref) == "v1-secret"  # trailing newline dropped
    path.write_text("v2-secret-longer")
    assert await store.resolve(ref) == "v1-secret"  # within the poll interval: cached
    clock.now += 2.5
    assert await store.resolve(ref) == "v2-secret-longer"
    clock.now += 2.5
    assert store.resolve_cached(ref) == "v2-secret-longer"
    assert store.files.reads == 2  # an unchanged file is stat'ed, not re-read


def test_kubernetes_symlink_swap(tmp_path: Path) -> None:
    """A Secret volume: token -> ..data/token, ..data -> ..2024_01; rotation writes a new
    timestamped dir and atomically renames a new ..data link over the old one."""
    clock = Clock()
    store = SecretStore(SecretsSpec(file_poll_s=1), clock=clock)
    for name, value in (("..2024_01", "old-token"), ("..2024_02", "new-token")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "token").write_text(value)
    os.symlink("..2024_01", tmp_path / "..data")
    os.symlink("..data/token", tmp_path / "token")
    ref = f"${{file:{tmp_path / 'token'}}}"
    assert store.resolve_cached(ref) == "old-token"
    os.symlink("..2024_02", tmp_path / "..data_tmp")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert store.resolve_cached(ref) == "old-token"
    clock.now += 1.5
    assert store.resolve_cached(ref) == "new-token"


async def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    store = SecretStore(SecretsSpec())
    with pytest.raises(ProxyError) as err:
        await store.resolve(f"${{file:{tmp_path}/nope}}")
    assert err.value.message == f"secret ${{file:{tmp_path}/nope}} cannot be read"
    assert err.value.__cause__ is None and err.value.__suppress_context__


async def test_scoping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference configured on route A is never resolved for route B."""
    monkeypatch.setenv("CW_A_TOKEN", "token-of-route-a")
    monkeypatch.setenv("CW_B_TOKEN", "token-of-route-b")
    store = SecretStore(SecretsSpec())
    a = store.scope("a", [parse_template("Bearer ${env:CW_A_TOKEN}")])
    b = store.scope("b", ["${env:CW_B_TOKEN}", "static"])
    assert await a.resolve("Bearer ${env:CW_A_TOKEN}") == "Bearer token-of-route-a"
    assert a.resolve_cached("x ${env:CW_A_TOKEN}") == "x token-of-route-a"
    assert b.resolve_cached("plain text") == "plain text"
    for call in (b.resolve_cached, a.resolve_cached):
        other = "${env:CW_A_TOKEN}" if call == b.resolve_cached else "${env:CW_B_TOKEN}"
        with pytest.raises(ProxyError) as err:
            call(other)
        assert "does not declare" in err.value.message and "token-of" not in str(err.value)
    with pytest.raises(ProxyError):
        await b.resolve("${env:CW_A_TOKEN}")
    assert a.current_values() == frozenset({"token-of-route-a"})
    assert b.current_values() == frozenset({"token-of-route-b"})
    monkeypatch.delenv("CW_B_TOKEN")
    assert b.current_values() == frozenset()
    assert await store.prefetch() == ["secret ${env:CW_B_TOKEN} is not set"]


def test_vault_token_cannot_be_a_vault_reference() -> None:
    spec = SecretsSpec.model_validate(
        {"vault": {"address": "http://127.0.0.1:1", "token": "${vault:secret/x#token}"}})
    with pytest.raises(ValueError, match="cannot itself"):
        SecretStore(spec)
