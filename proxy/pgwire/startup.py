"""Reading a client's StartupMessage: who the caller is, and what to send upstream.

Pure functions over the parameter dict. The client's user/database name the caller
(or the tenant), never the upstream login: the proxy logs in with its own credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.pgwire.settings import startup_value_refusal

PREFIX = "callwarden."
_FALSE = frozenset({"false", "off", "no", "0"})
_SECRET_KEYS = frozenset({"password", "passfile", "sslpassword"})
_LOGIN_KEYS = frozenset({"user", "database", "replication", "options"})


@dataclass(frozen=True, slots=True)
class ClientStartup:
    tenant: str | None
    role: str | None
    upstream_params: dict[str, str]
    """Parameters to forward (no login, no callwarden.* options); user/database added later."""
    database: str | None
    """The database the client asked for."""


def is_replication(params: dict[str, str]) -> bool:
    value = params.get("replication")
    return value is not None and value.strip().lower() not in _FALSE


def has_plaintext_password(params: dict[str, str]) -> bool:
    """A password sent as a startup parameter (some drivers allow it): never forwarded."""
    if any(k.lower() in _SECRET_KEYS for k in params):
        return True
    return any(name.lower() in _SECRET_KEYS for name, _ in _settings(params.get("options", "")))


def split_options(options: str) -> list[str]:
    """Split `options` the way the server does: whitespace separates, backslash escapes."""
    out: list[str] = []
    cur: list[str] = []
    it = iter(options)
    for ch in it:
        if ch == "\\":
            cur.append(next(it, ""))
        elif ch.isspace():
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def _join_options(tokens: list[str]) -> str:
    return " ".join(t.replace("\\", "\\\\").replace(" ", "\\ ") for t in tokens)


def _setting(token: str) -> str | None:
    if token.startswith("--"):
        return token[2:]
    if token.startswith("-c") and len(token) > 2:
        return token[2:]
    return None


def _settings(options: str) -> list[tuple[str, str]]:
    """(name, value) of each `-c name=value` / `--name=value` setting in `options`."""
    tokens = split_options(options)
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        setting = _setting(tok)
        if tok == "-c" and i + 1 < len(tokens):
            setting = tokens[i + 1]
            i += 1
        if setting is not None and "=" in setting:
            name, _, value = setting.partition("=")
            out.append((name.replace("-", "_"), value))
        i += 1
    return out


def strict_settings(options: str) -> list[tuple[str, str]] | None:
    """Every token of `options` read as a setting (`-c name=value`, `-cname=value`,
    `--name=value`); None when anything else is there. The server reads `options` with
    getopt, where `-ec name=value` or `-D dir` also mean something: only this one shape is
    judged, so only this one shape is accepted."""
    tokens = split_options(options)
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "-c":
            if i + 1 >= len(tokens):
                return None
            setting: str | None = tokens[i + 1]
            i += 1
        else:
            setting = _setting(tok)
        if setting is None or "=" not in setting:
            return None
        name, _, value = setting.partition("=")
        out.append((name.replace("-", "_"), value))
        i += 1
    return out


def startup_refusal(params: dict[str, str], read_only: bool) -> str | None:
    """Why the proxy will not open a session with these parameters, or None. Every
    parameter that is not a login key is a server setting, as is every `-c` in options."""
    settings = strict_settings(params.get("options", ""))
    if settings is None:
        return "startup options other than -c name=value are not accepted"
    named = [(k, v) for k, v in params.items()
             if k not in _LOGIN_KEYS and not k.startswith("_pq_.")]
    for name, value in [*settings, *named]:
        reason = startup_value_refusal(name, value, read_only)
        if reason is not None:
            return reason
    return None


def strip_proxy_options(options: str) -> str:
    """`options` without the proxy's own callwarden.* settings (the server would reject them)."""
    tokens = split_options(options)
    kept: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        pair = [tok, tokens[i + 1]] if tok == "-c" and i + 1 < len(tokens) else [tok]
        setting = pair[1] if len(pair) == 2 else _setting(tok)
        name = (setting or "").partition("=")[0].lower()
        if not name.startswith(PREFIX) and name not in _SECRET_KEYS:
            kept.extend(pair)
        i += len(pair)
    return _join_options(kept)


def read_startup(params: dict[str, str], tenant_parameter: str | None) -> ClientStartup:
    """Tenant from the configured parameter; role from `-c callwarden.role=`."""
    proxy_settings = {
        name[len(PREFIX):].lower(): value
        for name, value in _settings(params.get("options", ""))
        if name.lower().startswith(PREFIX)
    }
    if tenant_parameter in (None, "options"):
        tenant = proxy_settings.get("tenant")
    else:
        tenant = params.get(tenant_parameter)
    forward = {
        k: v
        for k, v in params.items()
        if k not in _LOGIN_KEYS and k.lower() not in _SECRET_KEYS and not k.startswith("_pq_.")
    }
    options = strip_proxy_options(params.get("options", ""))
    if options:
        forward["options"] = options
    return ClientStartup(tenant or None, proxy_settings.get("role") or None, forward,
                         params.get("database"))
