"""The rules file, as frozen pydantic models (extra keys are errors: a typo must not
silently disable a guard). Validated once at load; the hot path never sees these,
only what `compile` builds from them."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from proxy.config.refs import parse_template

Mode = Literal["enforce", "audit"]
Kind = Literal["http", "sql", "graph", "mcp", "postgres"]
KINDS: tuple[str, ...] = ("http", "sql", "graph", "mcp", "postgres")
RateKey = Literal["tenant", "route", "tool", "role"]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class Model(BaseModel):
    """Every rules model: frozen, unknown keys refused, and each field's docstring exported
    as its `description` in rules/schema.json (what an editor shows for the key)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _check_template(value: str) -> str:
    parse_template(value)
    return value


SecretTemplate = Annotated[str, Field(description="Text with ${env:..}/${file:..}/${vault:..}")]


JwtAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
"""SECURITY: asymmetric only: no `none`, no HMAC (an HS256 token keyed with a published
public key is the key-confusion forgery)."""
RouteIdentity = Literal["required", "optional", "headers"]


class JwtSpec(Model):
    """Verified caller identity: when set, roles and tenant come from a signed token."""

    header: str = "Authorization"
    """Header carrying the token."""
    scheme: str | None = "Bearer"
    """Prefix before the token in `header` (case-insensitive); null: the whole value."""
    issuer: str
    """Required `iss`."""
    audiences: Annotated[list[str], Field(min_length=1)]
    """`aud` must name one of these."""
    algorithms: Annotated[list[JwtAlgorithm], Field(min_length=1)] = ["RS256", "ES256", "EdDSA"]
    """Signature algorithms accepted (asymmetric only)."""
    jwks_file: str | None = None
    """A JWKS file, reloaded when it changes (a mounted Secret or ConfigMap)."""
    jwks_url: str | None = None
    """A JWKS URL (https, or http on loopback), fetched and cached."""
    refresh_s: PositiveFloat = 300
    """How often the URL is fetched again in the background (keys kept if it fails)."""
    min_refetch_s: PositiveFloat = 30
    """A token with an unknown `kid` fetches the URL again at most this often."""
    fetch_timeout_s: PositiveFloat = 5
    """Seconds one JWKS fetch may take."""
    clock_skew_s: Annotated[float, Field(ge=0, le=600)] = 30
    """Seconds of clock difference tolerated on exp, nbf and iat."""
    roles_claim: str = "roles"
    """Claim with the roles: a list, or a space-separated string (`scope`); a dotted path
    reads a nested claim (`realm_access.roles`)."""
    tenant_claim: str | None = "tenant"
    """Claim with the tenant; null: tokens carry no tenant."""
    require: list[str] = ["exp"]
    """Claims a token must carry (besides iss and aud)."""
    cache_size: PositiveInt = 10000
    """Verified tokens remembered (by exact text, until they expire)."""

    @model_validator(mode="after")
    def _source(self) -> JwtSpec:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("set one of jwks_file or jwks_url")
        if self.jwks_url is not None:
            parts = urlsplit(self.jwks_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("jwks_url must be an http(s) URL")
            if parts.scheme == "http" and not is_loopback(parts.hostname):
                raise ValueError("jwks_url must be https (http only on loopback)")
        return self


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
    """Names of the headers the orchestrator uses to speak to the proxy, and the token
    that proves who is calling."""

    jwt: JwtSpec | None = None
    """Verify callers' tokens; routes then default to `identity: required`."""
    tenant_header: str = "X-Tenant-ID"
    """Header naming the call's tenant (required on tenant routes)."""
    role_header: str = "X-Caller-Role"
    """Header with the caller's roles, comma separated (for `access.roles`)."""
    budget_header: str = "X-Request-Budget-Ms"
    """Header with the ms left in the orchestrator's budget (timeout = min(route, budget))."""
    phase_header: str = "X-Orchestration-Phase"
    """Header naming the phase (plan, execute, compose) a budget timeout reports."""
    trace_header: str = "X-Trace-ID"
    """Trace id header (read when `traceparent` is absent, always returned)."""


class VaultSpec(Model):
    address: str
    """Vault base URL, e.g. http://vault:8200."""
    token: SecretTemplate
    """A reference to the token (never a literal in production)."""
    ttl_s: PositiveFloat = 300
    """How long a read secret is cached before a background refresh."""
    namespace: str | None = None
    """Vault Enterprise namespace (X-Vault-Namespace), if any."""

    _v = field_validator("token")(_check_template)


class SecretsSpec(Model):
    vault: VaultSpec | None = None
    """Where ${vault:..} references are read (Vault KV v2)."""
    file_poll_s: PositiveFloat = 2.0
    """How often ${file:} secrets are checked for rotation (Kubernetes swaps them)."""


class RateSpec(Model):
    per_second: PositiveFloat | None = None
    """Calls per second per bucket (GCRA: a steady rate, bursts up to one second's worth)."""
    per_minute: PositiveFloat | None = None
    """Calls per minute per bucket; with per_second, both hold."""
    key: RateKey | list[RateKey] = "route"
    """What one bucket counts: tenant, route, tool, role, or a list of them."""
    wait_ms: Annotated[int, Field(ge=0)] = 0
    """Wait up to this long for capacity (never past the caller's budget); 0 = refuse at once."""
    scope: Literal["local", "cluster"] = "local"
    """cluster shares the limit across instances through the top-level `redis`."""
    on_store_error: Literal["allow", "deny"] = "allow"
    """cluster scope, Redis unreachable: allow falls back to a per-pod limit, deny refuses."""

    @model_validator(mode="after")
    def _one_rate(self) -> RateSpec:
        if self.per_second is None and self.per_minute is None:
            raise ValueError("set per_second and/or per_minute")
        return self


class BreakerSpec(Model):
    failures: PositiveInt = 5
    """Consecutive failures that open the breaker."""
    reset_after_s: PositiveFloat = 60
    """How long an open breaker refuses calls before it lets probes through."""
    failure_ratio: Annotated[float, Field(gt=0, le=1)] | None = None
    """Also open when this share of calls in `window_s` failed (with `min_calls`)."""
    window_s: PositiveFloat = 30
    """The window `failure_ratio` is measured over."""
    min_calls: PositiveInt = 20
    """Calls the window needs before `failure_ratio` can open the breaker."""
    half_open_probes: PositiveInt = 1
    """Successful probes that close a half-open breaker."""
    per_tenant: bool = False
    """One breaker per tenant, so one tenant's failing calls do not open it for all."""
    failure_on: list[Literal["connect", "timeout", "5xx", "429"]] = ["connect", "timeout", "5xx"]
    """What counts as a failure of the upstream."""


class RetrySpec(Model):
    max: Annotated[int, Field(ge=0, le=10)] = 0
    """Extra attempts after the first; 0 disables retries (the safe default for writes)."""
    backoff_ms: Annotated[int, Field(ge=0)] = 100
    """First backoff; doubled per attempt, with full jitter, never past the deadline."""
    max_backoff_ms: Annotated[int, Field(ge=0)] = 2000
    """Ceiling of one backoff."""
    budget_ratio: Annotated[float, Field(ge=0, le=1)] = 0.2
    """Retries may be at most this share of recent requests (Envoy's retry budget)."""
    min_retries_per_s: Annotated[float, Field(ge=0)] = 3
    """Floor of the retry budget, so low-traffic routes still retry."""


class Limits(Model):
    timeout_ms: PositiveInt = 30000
    """Upstream timeout; a caller's smaller budget (X-Request-Budget-Ms) wins."""
    rate: RateSpec | None = None
    """Rate limit; absent = none."""
    breaker: BreakerSpec | None = None
    """Circuit breaker for the upstream; absent = none."""
    retries: RetrySpec = RetrySpec()
    """Retries of failed calls (only calls safe to repeat, only within the deadline)."""
    max_inflight: PositiveInt | None = None
    """Calls in flight at once on the route; more are refused (RATE_LIMITED)."""
    max_request_bytes: PositiveInt | None = None
    """Cap on a request body; None lets pass-through bodies stream unbounded."""
    max_inspect_bytes: PositiveInt = 1_048_576
    """Largest body a guard buffers to inspect (413 beyond it)."""


class PartialLimits(Model):
    """`defaults:` entries: the same keys as `limits`, merged into each route of the kind."""

    timeout_ms: PositiveInt | None = None
    """As `limits.timeout_ms`."""
    rate: RateSpec | None = None
    """As `limits.rate`."""
    breaker: BreakerSpec | None = None
    """As `limits.breaker`."""
    retries: RetrySpec | None = None
    """As `limits.retries`."""
    max_inflight: PositiveInt | None = None
    """As `limits.max_inflight`."""
    max_request_bytes: PositiveInt | None = None
    """As `limits.max_request_bytes`."""
    max_inspect_bytes: PositiveInt | None = None
    """As `limits.max_inspect_bytes`."""


class Match(Model):
    path_prefix: str | None = None
    """Path prefix the route takes (longest prefix wins), e.g. /crm."""
    hosts: list[str] | None = None
    """Host header values (or absolute-form URL hosts); `*.example.com` matches subdomains."""
    strip_prefix: bool = True
    """Drop `path_prefix` from the path sent upstream."""

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


def _when(place: str) -> classmethod:  # type: ignore[type-arg]
    def check(cls: type, v: str | None) -> str | None:
        from proxy.conditions.cel import check

        return v if v is None else check(v, place)

    return classmethod(check)


When = Annotated[str, Field(description="A CEL condition that must hold (README: Conditions)")]


class Access(Model):
    roles: list[str] | None = None
    """Roles allowed on the route; absent = any role, `*` = any role."""
    when: When | None = None
    """CEL over request, identity and time; false or an evaluation error denies."""

    _w = field_validator("when")(_when("access"))


class CredentialsSpec(Model):
    inject: dict[str, SecretTemplate] = {}
    """Headers set upstream from templates; replaces a caller-supplied header of that name."""
    inject_query: dict[str, SecretTemplate] = {}
    """Query parameters set upstream from templates (caller's own values replaced)."""
    mask_responses: bool | None = None
    """Replace injected secrets and token formats in responses; default on for MCP routes."""
    allow: list[str] = []
    """Locations the plaintext scan skips, e.g. `header X-Debug-Token`, `json /sample/password`."""
    scan_headers: list[str] = []
    """More header names that carry credentials (Authorization, X-API-Key, Cookie built in)."""
    forward_token: bool = False
    """Send the caller's verified identity token (`identity.jwt.header`) upstream; off,
    it stays with the proxy."""

    @model_validator(mode="after")
    def _templates(self) -> CredentialsSpec:
        for value in self._templates_in():
            if value is not None:
                _check_template(value)
        return self

    def _templates_in(self) -> tuple[str | None, ...]:
        return (*self.inject.values(), *self.inject_query.values())


class PostgresCredentials(CredentialsSpec):
    """`credentials` of a postgres route: also the upstream login."""

    user: SecretTemplate | None = None
    """Upstream user the proxy logs in as."""
    password: SecretTemplate | None = None
    """Upstream password."""

    def _templates_in(self) -> tuple[str | None, ...]:
        return (*super()._templates_in(), self.user, self.password)


class TenantSpec(Model):
    required: bool = True
    """Refuse calls without a tenant (AUTH_FAILED)."""
    forward_header: str | None = None
    """Send the tenant upstream in this header (caller's own value replaced)."""
    json_field: str | None = None
    """JSON pointer that must equal the caller's tenant (set when absent)."""
    label: bool = False
    """Opt in to a tenant label on metrics (capped cardinality)."""


class PostgresTenant(TenantSpec):
    """`tenant` of a postgres route: also where the startup packet names the tenant."""

    startup_parameter: str | None = None
    """user, database, application_name or options (`-c callwarden.tenant=`)."""


class SqlLocation(Model):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    json_pointer: str | None = Field(None, alias="json")
    """`json:` in rules: JSON pointer to the SQL text, e.g. /query."""
    params: str | None = None
    """JSON pointer to bound parameters, where the API has them."""
    query_param: str | None = None
    """Query parameter holding the SQL text, e.g. q."""
    body: Literal["raw"] | None = None
    """raw: the whole body is the SQL text."""
    preset: Literal["generic", "clickhouse", "trino", "snowflake", "databricks"] | None = None
    """Where a known API carries its SQL (and where not: result polling, cancels)."""

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
    """Column holding the tenant; `column = <caller's tenant>` is added for every table."""
    tables: list[str]
    """Tenant-scoped tables: every reference to one is filtered (others are untouched)."""


class SqlFunctions(Model):
    allow: tuple[str, ...] = ()
    """Functions (and, on postgres, operators) a read-only or tenant route lets through
    although the guard cannot prove them harmless: user-defined ones, volatile
    built-ins. Bare (`my_func`) or schema-qualified (`app.my_func`); case-insensitive."""


class SqlAllowTables(Model):
    """Per-caller table scope as data. Each list that names the caller (one of its roles,
    its tenant, or `*` for everyone else) bounds the tables a statement may name; a
    caller no entry names is refused. Roles: the union of the caller's roles' lists."""

    roles: dict[str, list[str]] | None = None
    """Role -> tables it may name (`*` for any other role)."""
    tenants: dict[str, list[str]] | None = None
    """Tenant -> tables it may name (`*` for any other tenant)."""

    @model_validator(mode="after")
    def _some(self) -> SqlAllowTables:
        if self.roles is None and self.tenants is None:
            raise ValueError("set roles and/or tenants")
        return self


class SqlSpec(Model):
    dialect: str = "postgres"
    """sqlglot dialect the statements are parsed in (postgres, duckdb, clickhouse ...)."""
    location: SqlLocation = SqlLocation(json="/query")  # type: ignore[call-arg]
    """Where the request carries its SQL."""
    read_only: bool = True
    """Refuse writes (INSERT, UPDATE, DELETE, MERGE, COPY ...), also behind EXPLAIN."""
    block_ddl: bool = True
    """Refuse CREATE, ALTER, DROP, TRUNCATE and other DDL."""
    block_dcl: bool = True
    """Refuse GRANT, REVOKE and other DCL."""
    blocked_functions: list[str] = []
    """Added to the built-in per-dialect list of side-effecting functions."""
    functions: SqlFunctions | None = None
    """Functions let through beyond the dialect's known-pure built-ins."""
    allowed_tables: list[str] | None = None
    """Tables a statement may read; absent = any."""
    max_rows: PositiveInt | None = None
    """Row cap on results (a LIMIT is added; JSON answers are counted too)."""
    on_excess: Literal["deny", "truncate"] = "deny"
    """Over `max_rows`: refuse (MAX_ROWS_EXCEEDED) or cut with a marker."""
    tenant: SqlTenant | None = None
    """Tenant predicate injected into every tenant-scoped table."""
    argument: str | None = None
    """MCP tools: the argument holding the SQL."""
    allow_tables: SqlAllowTables | None = None
    """Tables a role or tenant may read (beyond `allowed_tables`, which binds everyone)."""
    when: When | None = None
    """CEL over request, identity, time and sql (kind, tables); false or an error denies."""

    _w = field_validator("when")(_when("sql"))

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
    """Query language of the route."""
    api: Literal["neo4j-tx", "neo4j-query", "gremlin-http"] = "neo4j-tx"
    """HTTP API the statements come in (Neo4j transactional or Query API, Gremlin HTTP)."""
    read_only: bool = True
    """Refuse writes (CREATE, MERGE, SET, DELETE; Gremlin addV, drop ...)."""
    max_rows: PositiveInt | None = None
    """Row cap on results."""
    tenant: GraphTenant | None = None
    """Tenant filter every pattern must carry."""
    blocked_procedures: list[str] = []
    """Globs of procedures and functions refused everywhere."""
    allowed_procedures: list[str] = []
    """Globs (case-insensitive, `*` spans dots) of procedures and functions a read-only or
    tenant route may call beyond the built-in read-only ones (db.labels, date.*, ...).
    Unknown procedures and functions are refused there: the guard cannot tell what they
    write or read. `blocked_procedures` wins. Tenant routes refuse CALL of any procedure."""
    when: When | None = None
    """CEL over request, identity and time; false or an evaluation error denies."""

    _w = field_validator("when")(_when("graph"))

    @model_validator(mode="after")
    def _api(self) -> GraphSpec:
        if (self.language == "gremlin") != (self.api == "gremlin-http"):
            raise ValueError("gremlin goes with api gremlin-http, cypher with neo4j-tx/neo4j-query")
        return self


class ApprovalWebhook(Model):
    url: SecretTemplate
    """Where the notice is POSTed; may be a reference (a Slack URL is a secret)."""
    format: Literal["json", "slack"] = "json"
    """json: the approval record (masked arguments); slack: an incoming-webhook `text`."""

    _v = field_validator("url")(_check_template)


class ApprovalSpec(Model):
    """A person must approve these exact calls (proxy/approval/)."""

    approvers: Annotated[list[str], Field(min_length=1)]
    """Roles allowed to decide (the approver's role header on the admin port)."""
    when: Literal["always", "writes", "destructive"] = "always"
    """always; writes: SQL statements that can write; destructive: MCP tools whose pinned
    annotations do not say readOnlyHint or destructiveHint: false (MCP's default)."""
    timeout_s: PositiveFloat = 300
    """An approval not decided by then expires."""
    mode: Literal["wait", "defer"] = "wait"
    """wait: the call is held open; defer: APPROVAL_PENDING at once, retry with the id."""
    notify: list[ApprovalWebhook] = []
    """Webhooks told of each held call: a generic JSON POST or a Slack-compatible body."""
    remember_s: Annotated[float, Field(ge=0)] = 0
    """An approved digest lets the same call through again for this long (0: once)."""


class ApprovalAdmin(Model):
    """Top-level `approval:`: how approvers authenticate on the admin port."""

    admin_token: SecretTemplate | None = None
    """Bearer token approvers present (a reference); unset: nobody can decide."""
    approver_header: str = "X-Approver"
    """Header naming the approver on the admin API (recorded with the decision)."""
    role_header: str = "X-Approver-Role"
    """Header with the approver's roles, matched against `approvers`."""

    _v = field_validator("admin_token")(lambda v: v if v is None else _check_template(v))


class McpTool(Model):
    roles: list[str] = ["*"]
    """Roles that may call (and see) the tool; `*` = any."""
    approval: ApprovalSpec | None = None
    """Hold calls of this tool until a person approves them."""
    limits: PartialLimits | None = None
    """Per-tool limits (timeout, rate, breaker, retries) over the route's."""
    sql: SqlSpec | None = None
    """The tool takes SQL: judged (and tenant-rewritten) like a sql route's."""
    tenant_argument: str | None = None
    """Argument pinned to the caller's tenant (set when absent, refused when different)."""
    idempotent: bool = False
    """Safe to retry (also taken from the server's readOnlyHint/idempotentHint)."""
    when: When | None = None
    """CEL over request, identity, time and tool (name, arguments, annotations)."""

    _w = field_validator("when")(_when("tool"))


class McpSpec(Model):
    default: Literal["allow", "deny"] = "deny"
    """Tools not listed: denied and hidden (deny) or allowed to any role."""
    tools: dict[str, McpTool] = {}
    """Policy per tool name; tools not named follow `default`."""
    methods: dict[str, list[str]] = {}
    """Roles per JSON-RPC method other than tools/* (e.g. resources/read); absent = allowed."""
    pins: str | None = None
    """Pin file of the server's tool definitions (`callwarden pin`): rug-pull protection."""
    on_change: Literal["block", "warn"] = "block"
    """A tool whose definition differs from its pin: hidden and refused (block), or logged."""


class PostgresSpec(Model):
    client_auth: Literal["trust", "password"] = "trust"
    """How clients log in to the listener (password: `client_password`)."""
    client_password: SecretTemplate | None = None
    """The password clients give the listener (a reference)."""
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "disable"
    """TLS to the upstream server, as libpq's sslmode."""
    max_connections: PositiveInt = 100
    """Client connections at once; more are refused."""
    database: str | None = None
    """Upstream database; absent = the client's (or the user's name)."""

    _v = field_validator("client_password")(lambda v: v if v is None else _check_template(v))


SECTIONS = ("sql", "graph", "mcp", "postgres", "listen")
"""Route keys only some kinds have."""


class RouteBase(Model):
    """What every route kind has. A kind's model names its own sections; the ones it lacks
    read as None (class attributes, not keys: a rules file that sets one is refused)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    """Unique route name: the metric label, the log field, `explain --route`."""
    match: Match = Match()
    """Which calls the route takes (postgres routes take their `listen` connections)."""
    upstream: str
    """Where calls go: an http:// or https:// base URL (host:port for postgres routes)."""
    mode: Mode | None = None
    """Route mode; absent = the file's `mode`."""
    guard_modes: Annotated[dict[str, Mode], Field(json_schema_extra=_guard_names_schema)] = {}
    """Per-guard override, e.g. {tenant_scope: audit} while a new tenant rule beds in."""
    access: Access = Access()
    """Who may call the route (RBAC on X-Caller-Role)."""
    credentials: CredentialsSpec = CredentialsSpec()
    """Secrets injected upstream, plaintext-credential scanning and response masking."""
    tenant: TenantSpec | None = None
    """Tenant rules of the route; absent = calls need no tenant (unless sql/graph say so)."""
    limits: Limits = Limits()
    """Timeout, rate limit, breaker, retries, concurrency and size caps."""
    forward_control_headers: bool = False
    """Forward X-Caller-Role and friends upstream (off: they are the proxy's own)."""
    approval: ApprovalSpec | None = None
    """Hold calls until a person approves them (MCP: also per tool)."""
    identity: RouteIdentity | None = None
    """required: a verified token (identity.jwt); optional: verified when sent, else
    anonymous; headers: trust X-Tenant-ID/X-Caller-Role (sidecar). Default: required
    when identity.jwt is set, else headers."""

    _g = field_validator("guard_modes")(lambda v: _known_guards(v))

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any) -> Any:
        """Name the section a kind does not take, or the one it needs, in the message."""
        if isinstance(data, dict):
            kind = data.get("kind", "http")
            for key in SECTIONS:
                field = cls.model_fields.get(key)
                if key in data and field is None:
                    raise ValueError(f"'{key}' section on a route of kind {kind}")
                if key not in data and field is not None and field.is_required():
                    what = f"'{key}'" if key == "listen" else f"a '{key}' section"
                    raise ValueError(f"a {kind} route needs {what}")
        return data


class _HttpFamily(RouteBase):
    """Routes whose calls come over HTTP to the proxy port."""

    postgres: ClassVar[None] = None
    listen: ClassVar[None] = None

    @model_validator(mode="after")
    def _http(self) -> _HttpFamily:
        parts = urlsplit(self.upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("upstream must be an http:// or https:// URL")
        if self.match.path_prefix is None and self.match.hosts is None:
            raise ValueError("match needs path_prefix and/or hosts")
        return self


class HttpRoute(_HttpFamily):
    """A plain HTTP API."""

    kind: Literal["http"] = "http"
    """http (the default), sql, graph, mcp or postgres: which sections the route takes."""
    sql: ClassVar[None] = None
    graph: ClassVar[None] = None
    mcp: ClassVar[None] = None


class SqlRoute(_HttpFamily):
    """SQL sent over HTTP (ClickHouse, Trino, Snowflake, Databricks, a JSON API)."""

    kind: Literal["sql"]
    """sql: statements judged by the SQL guard."""
    sql: SqlSpec
    """Where the SQL is and what it may do."""
    graph: ClassVar[None] = None
    mcp: ClassVar[None] = None


class GraphRoute(_HttpFamily):
    """Cypher or Gremlin over HTTP (Neo4j, Gremlin Server)."""

    kind: Literal["graph"]
    """graph: statements judged by the graph guard."""
    graph: GraphSpec
    """Language, API and what the statements may do."""
    sql: ClassVar[None] = None
    mcp: ClassVar[None] = None


class McpRoute(_HttpFamily):
    """An MCP server (Streamable HTTP, JSON-RPC)."""

    kind: Literal["mcp"]
    """mcp: JSON-RPC judged per method and per tool."""
    mcp: McpSpec | None = None
    """Per-tool policy; absent = every tool denied and hidden."""
    sql: ClassVar[None] = None
    graph: ClassVar[None] = None


class PostgresRoute(RouteBase):
    """PostgreSQL wire protocol: its own listener, each statement judged by the SQL guard."""

    kind: Literal["postgres"]
    """postgres: a wire-protocol listener in front of a PostgreSQL server."""
    listen: str
    """The listener's host:port (loopback by default)."""
    sql: SqlSpec | None = None
    """The SQL policy of the statements (dialect postgres)."""
    postgres: PostgresSpec | None = None
    """Client login, TLS to the upstream, connection cap."""
    credentials: PostgresCredentials = PostgresCredentials()
    """The upstream login (user, password), as references."""
    tenant: PostgresTenant | None = None
    """Tenant rules, and where the startup packet names the tenant."""
    graph: ClassVar[None] = None
    mcp: ClassVar[None] = None

    @model_validator(mode="after")
    def _addresses(self) -> PostgresRoute:
        _host_port(self.listen)
        _host_port(self.upstream)
        return self


def _route_kind(value: Any) -> str:
    """The tag of a route: its `kind`, http when absent (a kind that is no kind's name is
    refused by the tag check; a route that is not a mapping by the http model)."""
    kind = value.get("kind", "http") if isinstance(value, dict) else getattr(value, "kind", "http")
    return kind if isinstance(kind, str) else repr(kind)


Route = Annotated[
    Annotated[HttpRoute, Tag("http")]
    | Annotated[SqlRoute, Tag("sql")]
    | Annotated[GraphRoute, Tag("graph")]
    | Annotated[McpRoute, Tag("mcp")]
    | Annotated[PostgresRoute, Tag("postgres")],
    Discriminator(
        _route_kind,
        custom_error_type="route_kind",
        custom_error_message="kind must be one of http, sql, graph, mcp, postgres",
    ),
]
"""A route: one model per kind, chosen by `kind`, so a section of another kind is refused."""
ROUTE_TAGS = frozenset(KINDS)


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"'{value}' must be host:port")
    return host.strip("[]"), int(port)


class RedisSpec(Model):
    url: str
    """redis://host:port/db of the store cluster-wide rate limits share."""
    timeout_ms: PositiveInt = 50
    """Longest wait for the store before `on_store_error` applies."""


class AccessLogSpec(Model):
    enabled: bool = True
    """One JSON line per call on stdout."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of the access-log lines."""
    sample: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Share of allowed calls logged; refusals and errors are always logged."""


class DecisionLogSpec(Model):
    path: str | None = None
    """JSONL decision log for `callwarden replay`; off when unset."""
    max_bytes: PositiveInt = 50_000_000
    """Size at which the log file is rotated."""
    backups: Annotated[int, Field(ge=0)] = 3
    """Rotated files kept."""
    max_body_bytes: PositiveInt = 16384
    """Longest request body recorded for replay (longer ones are marked truncated)."""


class Observability(Model):
    access_log: AccessLogSpec = AccessLogSpec()
    """The JSON access log."""
    decision_log: DecisionLogSpec = DecisionLogSpec()
    """The decision log `callwarden replay` reads."""
    tenant_label_cap: PositiveInt = 100
    """Distinct tenant label values on metrics; the rest are counted as `other`."""


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
    """Rules format version."""
    mode: Mode = "enforce"
    """enforce, or audit: evaluate, log and count, never block."""
    environment: Literal["production", "development"] = "production"
    """production: plaintext credentials are refused; development: warned about."""
    identity: Identity = Identity()
    """Names of the proxy's control headers."""
    secrets: SecretsSpec = SecretsSpec()
    """Where secret references are resolved."""
    defaults: dict[Kind, PartialLimits] = {}
    """Limits per route kind, merged into each route's `limits`."""
    routes: list[Route] = []
    """The routes; a call no route matches is refused (POLICY_DENY)."""
    redis: RedisSpec | None = None
    """Store for cluster-wide rate limits."""
    observability: Observability = Observability()
    """Access log, decision log and metrics labels."""
    listen: Listen = Listen()
    """The proxy port's own checks (allowed Host and Origin values)."""
    approval: ApprovalAdmin = ApprovalAdmin()
    """Who decides held calls, and how they authenticate on the admin port."""

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
            if r.identity in ("required", "optional") and self.identity.jwt is None:
                problems.append(f"routes[{i}].identity: {r.identity} needs identity.jwt")
            if (r.kind == "postgres" and self.identity.jwt is not None
                    and r.identity != "headers"):
                problems.append(f"routes[{i}].identity: the PostgreSQL listener takes no "
                                "token; set identity: headers on this route")
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
