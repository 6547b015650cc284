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
