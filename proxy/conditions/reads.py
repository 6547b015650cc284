"""Which keys of a map variable a checked CEL expression reads, from the checker's own
output (`Expression.serialize()`: a google.protobuf.Any holding a cel.expr.CheckedExpr),
so a call converts only those keys for the runtime: converting a map costs microseconds
per entry, and a token's claims or a request's headers have many the rule never reads.

A map variable used only as `v.key`, `has(v.key)` or `v["key"]` (a string constant) is
read at those keys; any other use (passed whole, iterated, indexed by a value) reads all
of it. Anything this decoder does not understand reads everything: it can only make a
call convert more than it needs, never less (tests hold pruned and whole equal).
"""

from __future__ import annotations

from collections.abc import Iterator

WHOLE = None
Reads = dict[str, frozenset[str] | None]


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of one message; length-delimited values as bytes."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
            yield num, wt, v
        elif wt == 2:
            ln, i = _varint(buf, i)
            if i + ln > n:
                raise ValueError("truncated")
            yield num, wt, buf[i:i + ln]
            i += ln
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        else:
            raise ValueError("unsupported wire type")


def _one(buf: bytes, num: int) -> bytes | None:
    for f, wt, v in _fields(buf):
        if f == num and wt == 2:
            return v  # type: ignore[return-value]
    return None


def _ident(expr: bytes) -> str | None:
    body = _one(expr, 4)  # Expr.ident_expr
    if body is None:
        return None
    name = _one(body, 1)
    return name.decode() if name is not None else None


def _string_const(expr: bytes) -> str | None:
    body = _one(expr, 3)  # Expr.const_expr
    if body is None:
        return None
    value = _one(body, 6)  # Constant.string_value
    return value.decode() if value is not None else None


# Sub-message fields holding Exprs, per Expr kind (cel.expr.syntax proto field numbers).
_CHILD_EXPRS = {
    5: (1,),                    # Select.operand
    6: (1, 3),                  # Call.target, Call.args
    7: (1,),                    # CreateList.elements
    9: (2, 4, 5, 6, 7),         # Comprehension iter_range, accu_init, cond, step, result
}


def _walk(expr: bytes, out: dict[str, set[str] | None]) -> None:
    for num, wt, body in _fields(expr):
        if wt != 2 or not isinstance(body, bytes):
            continue
        if num == 4:  # a bare identifier: its whole value is read
            name = _one(body, 1)
            if name is not None:
                out[name.decode()] = WHOLE
        elif num == 5:  # select: `v.key` on an identifier reads that key
            operand, field = _one(body, 1), _one(body, 2)
            name = _ident(operand) if operand is not None else None
            if name is not None and field is not None:
                _add(out, name, field.decode())
            elif operand is not None:
                _walk(operand, out)
        elif num == 6:  # call: `v["key"]` reads that key; other calls read their args
            fn = _one(body, 2)
            args = [v for f, wt2, v in _fields(body) if f == 3 and wt2 == 2]
            if fn == b"_[_]" and len(args) == 2:
                name, key = _ident(args[0]), _string_const(args[1])  # type: ignore[arg-type]
                if name is not None and key is not None:
                    _add(out, name, key)
                    continue
            for f, wt2, v in _fields(body):
                if f in (1, 3) and wt2 == 2:
                    _walk(v, out)  # type: ignore[arg-type]
        elif num in (7, 9):
            for f, wt2, v in _fields(body):
                if f in _CHILD_EXPRS[num] and wt2 == 2:
                    _walk(v, out)  # type: ignore[arg-type]
        elif num == 8:  # struct / map literal: entries' keys and values
            for f, wt2, entry in _fields(body):
                if f == 2 and wt2 == 2:
                    for g, wt3, v in _fields(entry):  # type: ignore[arg-type]
                        if g in (3, 4) and wt3 == 2:
                            _walk(v, out)  # type: ignore[arg-type]


def _add(out: dict[str, set[str] | None], name: str, key: str) -> None:
    if name in out and out[name] is WHOLE:
        return
    out.setdefault(name, set()).add(key)  # type: ignore[union-attr]


def key_reads(serialized: bytes) -> Reads | None:
    """Variable -> the keys read (None: all of it); None when the bytes are not what this
    decoder expects (then every variable is read whole)."""
    try:
        checked = _one(serialized, 2)  # Any.value
        expr = _one(checked, 4) if checked is not None else None  # CheckedExpr.expr
        if expr is None:
            return None
        out: dict[str, set[str] | None] = {}
        _walk(expr, out)
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return {k: (frozenset(v) if v is not None else None) for k, v in out.items()}
