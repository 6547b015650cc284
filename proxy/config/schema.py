"""The rules file, as frozen pydantic models (extra keys are errors: a typo must not
silently disable a guard). Validated once at load; the hot path never sees these,
only what `compile` builds from them."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from proxy.config.refs import parse_template

Mode = Literal["enforce", "audit"]
Kind = Literal["http", "sql", "graph", "mcp", "postgres"]
KINDS: tuple[str, ...] = ("http", "sql", "graph", "mcp", "postgres")
RateKey = Literal["tenant", "route", "tool", "role"]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_template(value: str) -> str:
    parse_template(value)
    return value


SecretTemplate = Annotated[str, Field(description="Text with ${env:..}/${file:..}/${vault:..}")]


def _guard_names() -> tuple[str, ...]:
    # Late: the guard table imports the guards, and they import this module.
    from proxy.capabilities import GUARD_NAMES

    return GUARD_NAMES


def _known_guards(modes: dict[str, Mode]) -> dict[str, Mode]:
    names = _guard_names()
    for key in modes:
        if key not in names:
            raise ValueError(f"unknown guard '{key}' (guards: {', '.join(names)})")
    return modes


def _guard_names_schema(schema: dict[str, Any]) -> None:
    schema["propertyNames"] = {"enum": list(_guard_names())}


class Identity(Model):
    tenant_header: str = "X-Tenant-ID"
    role_header: str = "X-Caller-Role"
    budget_header: str = "X-Request-Budget-Ms"
    phase_header: str = "X-Orchestration-Phase"
    trace_header: str = "X-Trace-ID"


class VaultSpec(Model):
    address: str
    """Vault base URL, e.g. http://vault:8200."""
    token: SecretTemplate
    """A reference to the token (never a literal in production)."""
    ttl_s: PositiveFloat = 300
    """How long a read secret is cached before a background refresh."""
    namespace: str | None = None

    _v = field_validator("token")(_check_template)


class SecretsSpec(Model):
    vault: VaultSpec | None = None
    file_poll_s: PositiveFloat = 2.0
    """How often ${file:} secrets are checked for rotation (Kubernetes swaps them)."""


class RateSpec(Model):
    per_second: PositiveFloat | None = None
    per_minute: PositiveFloat | None = None
    key: RateKey | list[RateKey] = "route"
    """What one bucket counts: tenant, route, tool, role, or a list of them."""
    wait_ms: Annotated[int, Field(ge=0)] = 0
    """Wait up to this long for capacity (never past the caller's budget); 0 = refuse at once."""
    scope: Literal["local", "cluster"] = "local"
    """cluster shares the limit across instances through the top-level `redis`."""
    on_store_error: Literal["allow", "deny"] = "allow"

    @model_validator(mode="after")
    def _one_rate(self) -> RateSpec:
        if self.per_second is None and self.per_minute is None:
            raise ValueError("set per_second and/or per_minute")
        return self


class BreakerSpec(Model):
    failures: PositiveInt = 5
    """Consecutive failures that open the breaker."""
    reset_after_s: PositiveFloat = 60
    failure_ratio: Annotated[float, Field(gt=0, le=1)] | None = None
    """Also open when this share of calls in `window_s` failed (with `min_calls`)."""
    window_s: PositiveFloat = 30
    min_calls: PositiveInt = 20
    half_open_probes: PositiveInt = 1
    per_tenant: bool = False
    """One breaker per tenant, so one tenant's failing calls do not open it for all."""
    failure_on: list[Literal["connect", "timeout", "5xx", "429"]] = ["connect", "timeout", "5xx"]


class RetrySpec(Model):
    max: Annotated[int, Field(ge=0, le=10)] = 0
    """Extra attempts after the first; 0 disables retries (the safe default for writes)."""
    backoff_ms: Annotated[int, Field(ge=0)] = 100
    max_backoff_ms: Annotated[int, Field(ge=0)] = 2000
    budget_ratio: Annotated[float, Field(ge=0, le=1)] = 0.2
    """Retries may be at most this share of recent requests (Envoy's retry budget)."""
    min_retries_per_s: Annotated[float, Field(ge=0)] = 3
    """Floor of the retry budget, so low-traffic routes still retry."""


class Limits(Model):
    timeout_ms: PositiveInt = 30000
    rate: RateSpec | None = None
    breaker: BreakerSpec | None = None
    retries: RetrySpec = RetrySpec()
    max_inflight: PositiveInt | None = None
    max_request_bytes: PositiveInt | None = None
    """Cap on a request body; None lets pass-through bodies stream unbounded."""
    max_inspect_bytes: PositiveInt = 1_048_576
    """Largest body a guard buffers to inspect (413 beyond it)."""


class PartialLimits(Model):
    """`defaults:` entries: the same keys as `limits`, merged into each route of the kind."""

    timeout_ms: PositiveInt | None = None
    rate: RateSpec | None = None
    breaker: BreakerSpec | None = None
    retries: RetrySpec | None = None
    max_inflight: PositiveInt | None = None
    max_request_bytes: PositiveInt | None = None
    max_inspect_bytes: PositiveInt | None = None


class Match(Model):
    path_prefix: str | None = None
    hosts: list[str] | None = None
    """Host header values (or absolute-form URL hosts); `*.example.com` matches subdomains."""
    strip_prefix: bool = True

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith("/"):
            raise ValueError("path_prefix must start with '/'")
        if any(seg in (".", "..") for seg in v.split("/")) or "//" in v or "%" in v:
            raise ValueError("path_prefix must be a normalised path")
        return v.rstrip("/") or "/"

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("hosts must not be empty")
            return [h.lower().rstrip(".") for h in v]
        return v


class Access(Model):
    roles: list[str] | None = None
    """Roles allowed on the route; absent = any role, `*` = any role."""


class CredentialsSpec(Model):
    inject: dict[str, SecretTemplate] = {}
    """Headers set upstream from templates; replaces a caller-supplied header of that name."""
    inject_query: dict[str, SecretTemplate] = {}
    mask_responses: bool | None = None
    """Replace injected secrets and token formats in responses; default on for MCP routes."""
    allow: list[str] = []
    """Locations the plaintext scan skips, e.g. `header X-Debug-Token`, `json /sample/password`."""
    scan_headers: list[str] = []
    """More header names that carry credentials (Authorization, X-API-Key, Cookie built in)."""
    user: SecretTemplate | None = None
    """Postgres routes: upstream user."""
    password: SecretTemplate | None = None
    """Postgres routes: upstream password."""

    @model_validator(mode="after")
    def _templates(self) -> CredentialsSpec:
        for value in (*self.inject.values(), *self.inject_query.values(), self.user, self.password):
            if value is not None:
                _check_template(value)
        return self


class TenantSpec(Model):
    required: bool = True
    """Refuse calls without a tenant (AUTH_FAILED)."""
    forward_header: str | None = None
    """Send the tenant upstream in this header (caller's own value replaced)."""
    json_field: str | None = None
    """JSON pointer that must equal the caller's tenant (set when absent)."""
    startup_parameter: str | None = None
    """Postgres: user, database, application_name or options (`-c callwarden.tenant=`)."""
    label: bool = False
    """Opt in to a tenant label on metrics (capped cardinality)."""


class SqlLocation(Model):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    json_pointer: str | None = Field(None, alias="json")
    """`json:` in rules: JSON pointer to the SQL text, e.g. /query."""
    params: str | None = None
    """JSON pointer to bound parameters, where the API has them."""
    query_param: str | None = None
    body: Literal["raw"] | None = None
    preset: Literal["generic", "clickhouse", "trino", "snowflake", "databricks"] | None = None

    @field_validator("json_pointer", "params")
    @classmethod
    def _pointer(cls, v: str | None) -> str | None:
        if v and not v.startswith("/"):
            raise ValueError(f"'{v}' is not a JSON pointer (RFC 6901: empty or starting with /)")
        return v

    @model_validator(mode="after")
    def _one(self) -> SqlLocation:
        if (
            sum(
                x is not None for x in (self.json_pointer, self.query_param, self.body, self.preset)
            )
            > 1
        ):
            raise ValueError("set one of json, query_param, body or preset")
        return self


class SqlTenant(Model):
    column: str
    tables: list[str]


class SqlFunctions(Model):
    allow: tuple[str, ...] = ()
    """Functions (and, on postgres, operators) a read-only or tenant route lets through
    although the guard cannot prove them harmless: user-defined ones, volatile
    built-ins. Bare (`my_func`) or schema-qualified (`app.my_func`); case-insensitive."""


class SqlSpec(Model):
    dialect: str = "postgres"
    location: SqlLocation = SqlLocation(json="/query")  # type: ignore[call-arg]
    read_only: bool = True
    block_ddl: bool = True
    block_dcl: bool = True
    blocked_functions: list[str] = []
    """Added to the built-in per-dialect list of side-effecting functions."""
    functions: SqlFunctions | None = None
    allowed_tables: list[str] | None = None
    max_rows: PositiveInt | None = None
    on_excess: Literal["deny", "truncate"] = "deny"
    tenant: SqlTenant | None = None
    functions: SqlFunctions | None = None
    argument: str | None = None
    """MCP tools: the argument holding the SQL."""

    @field_validator("dialect")
    @classmethod
    def _dialect(cls, v: str) -> str:
        from sqlglot.dialects.dialect import Dialect

        try:
            Dialect.get_or_raise(v)
        except Exception as exc:  # sqlglot raises ValueError with a suggestion
            raise ValueError(f"unknown SQL dialect '{v}'") from exc
        return v


class GraphTenant(Model):
    parameter: str
    """The query parameter (Cypher `$name`) or Gremlin binding the proxy pins to the
    caller's tenant."""
    property: str | None = None
    """The node/vertex property holding the tenant; absent = the parameter's name. Every
    node pattern (Cypher) and every element a traversal reaches (Gremlin) must be filtered
    by `property = parameter` with AND semantics, or the statement is refused."""


class GraphSpec(Model):
    language: Literal["cypher", "gremlin"] = "cypher"
    api: Literal["neo4j-tx", "neo4j-query", "gremlin-http"] = "neo4j-tx"
    read_only: bool = True
    max_rows: PositiveInt | None = None
    tenant: GraphTenant | None = None
    blocked_procedures: list[str] = []
    allowed_procedures: list[str] = []
    """Globs (case-insensitive, `*` spans dots) of procedures and functions a read-only or
    tenant route may call beyond the built-in read-only ones (db.labels, date.*, ...).
    Unknown procedures and functions are refused there: the guard cannot tell what they
    write or read. `blocked_procedures` wins. Tenant routes refuse CALL of any procedure."""

    @model_validator(mode="after")
    def _api(self) -> GraphSpec:
        if (self.language == "gremlin") != (self.api == "gremlin-http"):
            raise ValueError("gremlin goes with api gremlin-http, cypher with neo4j-tx/neo4j-query")
        return self


class McpTool(Model):
    roles: list[str] = ["*"]
    limits: PartialLimits | None = None
    sql: SqlSpec | None = None
    tenant_argument: str | None = None
    idempotent: bool = False
    """Safe to retry (also taken from the server's readOnlyHint/idempotentHint)."""


class McpSpec(Model):
    default: Literal["allow", "deny"] = "deny"
    """Tools not listed: denied and hidden (deny) or allowed to any role."""
    tools: dict[str, McpTool] = {}
    methods: dict[str, list[str]] = {}
    """Roles per JSON-RPC method other than tools/* (e.g. resources/read); absent = allowed."""
    pins: str | None = None
    on_change: Literal["block", "warn"] = "block"


class PostgresSpec(Model):
    client_auth: Literal["trust", "password"] = "trust"
    client_password: SecretTemplate | None = None
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "disable"
    max_connections: PositiveInt = 100
    database: str | None = None

    _v = field_validator("client_password")(lambda v: v if v is None else _check_template(v))


class Route(Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    kind: Kind = "http"
    match: Match = Match()
    upstream: str
    mode: Mode | None = None
    """Route mode; absent = the file's `mode`."""
    guard_modes: Annotated[dict[str, Mode], Field(json_schema_extra=_guard_names_schema)] = {}
    """Per-guard override, e.g. {tenant_scope: audit} while a new tenant rule beds in."""

    _g = field_validator("guard_modes")(lambda v: _known_guards(v))
    access: Access = Access()
    credentials: CredentialsSpec = CredentialsSpec()
    tenant: TenantSpec | None = None
    limits: Limits = Limits()
    forward_control_headers: bool = False
    """Forward X-Caller-Role and friends upstream (off: they are the proxy's own)."""
    sql: SqlSpec | None = None
    graph: GraphSpec | None = None
    mcp: McpSpec | None = None
    postgres: PostgresSpec | None = None
    listen: str | None = None
    """Postgres routes: their own listener address (loopback by default)."""

    @model_validator(mode="after")
    def _kind(self) -> Route:
        section = {"sql": self.sql, "graph": self.graph, "postgres": self.postgres}
        for kind, value in section.items():
            # A postgres route carries its SQL policy in `sql` too.
            if value is not None and self.kind != kind and (kind, self.kind) != ("sql", "postgres"):
                raise ValueError(f"'{kind}' section on a route of kind {self.kind}")
        if self.mcp is not None and self.kind != "mcp":
            raise ValueError(f"'mcp' section on a route of kind {self.kind}")
        if self.kind == "sql" and self.sql is None:
            raise ValueError("a sql route needs a 'sql' section")
        if self.kind == "graph" and self.graph is None:
            raise ValueError("a graph route needs a 'graph' section")
        if self.kind == "postgres":
            if self.listen is None:
                raise ValueError("a postgres route needs 'listen'")
            _host_port(self.listen)
            _host_port(self.upstream)
        else:
            parts = urlsplit(self.upstream)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("upstream must be an http:// or https:// URL")
            if self.match.path_prefix is None and self.match.hosts is None:
                raise ValueError("match needs path_prefix and/or hosts")
        if self.listen is not None and self.kind != "postgres":
            raise ValueError("'listen' is for postgres routes")
        return self


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"'{value}' must be host:port")
    return host.strip("[]"), int(port)


class RedisSpec(Model):
    url: str
    timeout_ms: PositiveInt = 50


class AccessLogSpec(Model):
    enabled: bool = True
    level: Literal["debug", "info", "warning", "error"] = "info"
    sample: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Share of allowed calls logged; refusals and errors are always logged."""


class DecisionLogSpec(Model):
    path: str | None = None
    """JSONL decision log for `callwarden replay`; off when unset."""
    max_bytes: PositiveInt = 50_000_000
    backups: Annotated[int, Field(ge=0)] = 3
    max_body_bytes: PositiveInt = 16384


class Observability(Model):
    access_log: AccessLogSpec = AccessLogSpec()
    decision_log: DecisionLogSpec = DecisionLogSpec()
    tenant_label_cap: PositiveInt = 100


class Listen(Model):
    """The proxy port's own checks (DNS-rebinding protection, proxy/hosts.py)."""

    allowed_hosts: list[str] = []
    """Names a request's `Host` may use for the proxy besides `localhost`, loopback
    addresses, the listen address and the routes' `match.hosts` (default none); e.g. a
    Service name in standalone mode. `*.example.com` matches subdomains. Any other Host
    is refused (HOST_NOT_ALLOWED): a browser page whose name points at the proxy cannot
    drive tool calls through it."""
    allowed_origins: list[str] = []
    """Browser origins (`scheme://host[:port]`) whose requests are served; a request
    carrying any other `Origin` is refused (ORIGIN_NOT_ALLOWED). Default none: tool
    callers are not browsers."""

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        out = []
        for h in v:
            name = h.strip().lower().rstrip(".")
            if not name or (any(c in name for c in "/@?#: ") and not name.startswith("[")):
                raise ValueError(f"'{h}' must be a host name or address, without a port")
            out.append(name)
        return out

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        out = []
        for o in v:
            parts = urlsplit(o.strip())
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
                or parts.username is not None
            ):
                raise ValueError(f"'{o}' must be an origin: scheme://host[:port]")
            out.append(o.strip().rstrip("/").lower())
        return out


class Rules(Model):
    version: Literal[1] = 1
    mode: Mode = "enforce"
    environment: Literal["production", "development"] = "production"
    identity: Identity = Identity()
    secrets: SecretsSpec = SecretsSpec()
    defaults: dict[Kind, PartialLimits] = {}
    routes: list[Route] = []
    redis: RedisSpec | None = None
    observability: Observability = Observability()
    listen: Listen = Listen()

    @model_validator(mode="after")
    def _cross(self) -> Rules:
        problems: list[str] = []
        seen: dict[str, int] = {}
        matches: dict[tuple, str] = {}
        listens: dict[str, str] = {}
        for i, r in enumerate(self.routes):
            if r.name in seen:
                problems.append(f"routes[{i}].name: duplicate route name '{r.name}'")
            seen[r.name] = i
            if r.kind != "postgres":
                key = (r.match.path_prefix, tuple(sorted(r.match.hosts or ())))
                if key in matches:
                    problems.append(f"routes[{i}].match: same match as route '{matches[key]}'")
                matches[key] = r.name
            elif r.listen is not None:
                if r.listen in listens:
                    problems.append(f"routes[{i}].listen: also used by route '{listens[r.listen]}'")
                listens[r.listen] = r.name
            if r.limits.rate and r.limits.rate.scope == "cluster" and self.redis is None:
                problems.append(f"routes[{i}].limits.rate.scope: cluster needs a top-level 'redis'")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
