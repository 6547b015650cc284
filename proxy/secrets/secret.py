"""A secret value that cannot leak by accident: repr, str and f-strings show
`Secret(***)`, so a logged object, a traceback's locals or an exception message built
from it never carries the value. Only `reveal()` does, and only at the injection point."""

from __future__ import annotations

import hmac


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        # SECURITY: constant-time, so comparing secrets does not time their prefix.
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str:
        raise TypeError("a Secret is not serialisable")
