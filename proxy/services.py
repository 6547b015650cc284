"""Process-wide collaborators that guard builders may need. Its own module so guards and
the guard table can name it without importing `compile` (which imports the table)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Services:
    """Process-wide collaborators that guards may need (secret store, metrics ...)."""

    metrics: Any = None
    secrets: Any = None
    redis: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
