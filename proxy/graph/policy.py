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


@dataclass(frozen=True, slots=True)
class GraphPolicy:
    language: str = "cypher"
    api: str = "neo4j-tx"
    read_only: bool = True
    max_rows: int | None = None
    tenant_parameter: str | None = None
    blocked_procedures: tuple[str, ...] = ()
    """From the rules; checked on every route. Read-only routes add the built-in list."""
    _rules_re: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rules_re", _compile_globs(self.blocked_procedures))

    @classmethod
    def from_spec(cls, spec: GraphSpec) -> GraphPolicy:
        return cls(
            language=spec.language,
            api=spec.api,
            read_only=spec.read_only,
            max_rows=spec.max_rows,
            tenant_parameter=spec.tenant.parameter if spec.tenant else None,
            blocked_procedures=tuple(spec.blocked_procedures),
        )

    def procedure_blocked(self, name: str) -> bool:
        """Is this qualified procedure/function name refused on this route?"""
        low = name.lower()
        if self._rules_re is not None and self._rules_re.match(low):
            return True
        return self.read_only and _BUILTIN_RE is not None and bool(_BUILTIN_RE.match(low))


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
