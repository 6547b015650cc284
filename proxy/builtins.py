"""Imports the modules that register codecs (compile.CODECS) and guard builders
(compile.GUARD_BUILDERS). One line per capability; order does not matter, since the
chain order is fixed by compile.GUARD_ORDER."""

from __future__ import annotations

_loaded = False


def load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    # one import per capability module (each registers itself on import):
    import proxy.codecs.graph
    import proxy.codecs.mcp
    import proxy.codecs.sql
    import proxy.guards.approval
    import proxy.guards.credentials
    import proxy.guards.graph_safety
    import proxy.guards.mcp_policy
    import proxy.guards.ratelimit
    import proxy.guards.secrets
    import proxy.guards.sql_safety
    import proxy.guards.tenant_scope
    import proxy.integrity.guard  # noqa: F401
