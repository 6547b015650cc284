"""Per-route graph policy (compiled once from `GraphSpec`) and the decision a judge returns.

Shared by the Cypher and Gremlin judges: the procedure blocklist, and pinning the tenant
parameter to the caller's tenant.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from proxy.config.schema import GraphSpec
from proxy.model.errors import ErrorCode

# Write or admin procedures and functions, as case-insensitive globs (`*` spans dots).
# Those that run Cypher from a string (apoc.cypher.*, apoc.when ...) are here too: the
# guard cannot read inside the string, so they would bypass every other rule.
BUILTIN_BLOCKED_PROCEDURES: tuple[str, ...] = (
    "dbms.*",
    "db.create*",
    "db.drop*",
    "db.index.*.create*",
    "db.index.*.drop*",
    "db.index.vector.set*",
    "db.clearquerycaches",
    "db.checkpoint",
    "db.resample*",
    "db.prepareforreplanning",
    "db.stats.clear",
    "db.stats.collect",
    "db.stats.stop",
    "apoc.create.*",
    "apoc.merge.*",
    "apoc.refactor.*",
    "apoc.periodic.*",
    "apoc.load.*",
    "apoc.import.*",
    "apoc.export.*",
    "apoc.cypher.*",
    "apoc.do.*",
    "apoc.when",
    "apoc.case",
    "apoc.nodes.delete",
    "apoc.nodes.link",
    "apoc.nodes.collapse",
    "apoc.trigger.*",
    "apoc.schema.assert",
    "apoc.atomic.*",
    "apoc.lock.*",
    "apoc.custom.*",
    "apoc.uuid.*",
    "apoc.ttl.*",
    "apoc.systemdb.*",
    "apoc.static.set",
    "apoc.bolt.*",
    "apoc.mongo*",
    "apoc.es.*",
    "apoc.redis.*",
    "apoc.couchbase.*",
    "apoc.dv.*",
    "gds.*.write*",
    "gds.*.mutate*",
    "gds.graph.drop",
    "gds.graph.*.drop",
    "gds.graph.export*",
    "gds.model.drop",
    "gds.model.delete",
    "gds.model.store",
    "gds.model.publish",
)


def _compile_globs(globs: tuple[str, ...]) -> re.Pattern[str] | None:
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(g.lower())})" for g in globs))


_BUILTIN_RE = _compile_globs(BUILTIN_BLOCKED_PROCEDURES)

# SECURITY: read-only routes call only these procedures (plus the route's
# `allowed_procedures`): an unknown procedure may write, load files or run Cypher from a
# string. Each of these reads schema or an index and writes nothing.
BUILTIN_READ_PROCEDURES: tuple[str, ...] = (
    "db.labels",
    "db.relationshiptypes",
    "db.propertykeys",
    "db.schema.nodetypeproperties",
    "db.schema.reltypeproperties",
    "db.schema.visualization",
    "db.info",
    "db.ping",
    "db.index.fulltext.querynodes",
    "db.index.fulltext.queryrelationships",
    "db.index.fulltext.listavailableanalyzers",
    "db.index.vector.querynodes",
    "db.index.vector.queryrelationships",
)
# Namespaced functions of Cypher itself: pure computations over their arguments.
BUILTIN_NAMESPACED_FUNCTIONS: tuple[str, ...] = (
    "date.*",
    "datetime.*",
    "localdatetime.*",
    "localtime.*",
    "time.*",
    "duration.*",
    "point.*",
    "vector.similarity.*",
)
# Cypher's own functions without a namespace (lower-cased). Anything else called as
# `name(...)` is a user-defined function: refused on read-only and tenant routes.
BUILTIN_FUNCTIONS = frozenset(
    """abs acos all any asin atan atan2 avg ceil char_length character_length coalesce
    collect cos cosh cot coth count date datetime degrees duration e elementid endnode
    exists exp floor haversin head id isempty isnan keys labels last left length
    localdatetime localtime log log10 lower ltrim max min nodes none normalize nullif
    percentilecont percentiledisc pi point properties radians rand randomuuid range
    reduce relationships replace reverse right round rtrim btrim sign sin single sinh
    size split sqrt startnode stdev stdevp substring sum tail tan tanh time timestamp
    toboolean tobooleanlist tobooleanornull tofloat tofloatlist tofloatornull tointeger
    tointegerlist tointegerornull tolower tostring tostringlist tostringornull toupper
    trim type upper valuetype""".split()  # noqa: SIM905 (a word list reads better)
)
# Path searches reach nodes no pattern constrains: never on tenant routes.
PATH_FUNCTIONS = frozenset({"shortestpath", "allshortestpaths"})
_READ_PROC_RE = _compile_globs(BUILTIN_READ_PROCEDURES)
_NS_FUNC_RE = _compile_globs(BUILTIN_NAMESPACED_FUNCTIONS)


@dataclass(frozen=True, slots=True)
class GraphPolicy:
    language: str = "cypher"
    api: str = "neo4j-tx"
    read_only: bool = True
    max_rows: int | None = None
    tenant_parameter: str | None = None
    blocked_procedures: tuple[str, ...] = ()
    """From the rules; checked on every route. Read-only routes add the built-in list."""
    allowed_procedures: tuple[str, ...] = ()
    """From the rules: procedures/functions read-only and tenant routes may call."""
    tenant_property: str | None = None
    """The tenant property; None = the tenant parameter's name."""
    _rules_re: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _allow_re: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rules_re", _compile_globs(self.blocked_procedures))
        object.__setattr__(self, "_allow_re", _compile_globs(self.allowed_procedures))

    @property
    def strict(self) -> bool:
        """Read-only or tenant-scoped: unknown procedures and functions are refused."""
        return self.read_only or self.tenant_parameter is not None

    @property
    def scope_property(self) -> str | None:
        """The property every node/vertex must be filtered on (None: no tenant scoping)."""
        if self.tenant_parameter is None:
            return None
        return self.tenant_property or self.tenant_parameter

    @classmethod
    def from_spec(cls, spec: GraphSpec) -> GraphPolicy:
        return cls(
            language=spec.language,
            api=spec.api,
            read_only=spec.read_only,
            max_rows=spec.max_rows,
            tenant_parameter=spec.tenant.parameter if spec.tenant else None,
            tenant_property=spec.tenant.property if spec.tenant else None,
            blocked_procedures=tuple(spec.blocked_procedures),
            allowed_procedures=tuple(spec.allowed_procedures),
        )

    def procedure_blocked(self, name: str) -> bool:
        """Is this qualified procedure/function name refused on this route?"""
        low = name.lower()
        if self._rules_re is not None and self._rules_re.match(low):
            return True
        return self.read_only and _BUILTIN_RE is not None and bool(_BUILTIN_RE.match(low))

    def _allowed_by_rules(self, low: str) -> bool:
        return self._allow_re is not None and bool(self._allow_re.match(low))

    def procedure_refusal(self, name: str) -> str:
        """Why `CALL name` is refused on this route, or ''."""
        if self.procedure_blocked(name):
            return f"procedure {name} is not allowed on this route"
        if not self.strict:
            return ""
        low = name.lower()
        if self.tenant_parameter is not None:
            # SECURITY: a procedure's rows (nodes included) come from no constrained pattern.
            return f"procedure {name} is not allowed on a tenant route"
        if self._allowed_by_rules(low) or (_READ_PROC_RE is not None and _READ_PROC_RE.match(low)):
            return ""
        return f"procedure {name} is not known to be read-only (graph.allowed_procedures)"

    def function_refusal(self, name: str) -> str:
        """Why calling function `name(...)` is refused on this route, or ''."""
        if "." in name and self.procedure_blocked(name):
            return f"function {name} is not allowed on this route"
        if not self.strict:
            return ""
        low = name.lower()
        if self.tenant_parameter is not None and low in PATH_FUNCTIONS:
            return f"{name} is not allowed on a tenant route (it reaches unconstrained nodes)"
        if self._allowed_by_rules(low):
            return ""
        if "." not in low and low in BUILTIN_FUNCTIONS | PATH_FUNCTIONS:
            return ""
        if "." in low and _NS_FUNC_RE is not None and _NS_FUNC_RE.match(low):
            return ""
        return f"function {name} is not known (graph.allowed_procedures)"


@dataclass(frozen=True, slots=True)
class GraphDecision:
    code: ErrorCode | None
    """None: allowed (possibly rewritten)."""
    reason: str
    statement: str
    parameters: dict[str, Any]
    rewritten: bool = False

    @property
    def allowed(self) -> bool:
        return self.code is None


def pin_tenant(
    parameters: dict[str, Any] | None, name: str, tenant: str | None
) -> tuple[ErrorCode | None, str, dict[str, Any], bool]:
    """Force parameter `name` to the caller's tenant: (code, reason, parameters, changed).
    A different caller-supplied value is TENANT_MISMATCH, never silently replaced."""
    params = dict(parameters or {})
    if tenant is None:
        return ErrorCode.AUTH_FAILED, "tenant required on this route", params, False
    if name in params:
        if params[name] != tenant:
            reason = f"parameter '{name}' is not the caller's tenant"
            return ErrorCode.TENANT_MISMATCH, reason, params, False
        return None, "", params, False
    params[name] = tenant
    return None, "", params, True
