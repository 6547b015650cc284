"""The Gremlin guard (Gremlin Server scripts, Groovy syntax): a script must be one
traversal chain `g.V()...` with plain arguments. Code execution (closures, lambdas,
GString interpolation, JVM classes) is refused on every route; mutating steps on
read-only routes. The script is parsed into a tree (gremlin_tree); read-only and tenant
routes allow only known read steps, and tenant routes prove every traversal scoped
(gremlin_scope). Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from proxy.graph.gremlin_scope import script_problem
from proxy.graph.gremlin_tree import GremlinShapeError, parse
from proxy.graph.policy import GraphDecision, GraphPolicy, pin_tenant
from proxy.model.errors import ErrorCode

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<line>//[^\r\n]*)
  | (?P<block>/\*.*?\*/)
  | (?P<badblock>/\*)
  | (?P<string>'''(?:[^\\]|\\.)*?'''|\"\"\"(?:[^\\]|\\.)*?\"\"\"
        |'(?:[^'\\\r\n]|\\.)*'|"(?:[^"\\\r\n]|\\.)*")
  | (?P<number>0[xX][0-9a-fA-F_]+[lL]?|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?[lLiIgGdDfF]?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>\.&|\.@|\?\.|\*\.|->|\.\.|[=!<>]=?|&&|\|\||[(){}\[\],.:;+\-*/%&|^~?@$\\])
    """,
    re.VERBOSE | re.DOTALL,
)
# Refused on every route: they run arbitrary code on the server.
CODE_WORDS = frozenset(
    {
        "lambda",
        "system",
        "runtime",
        "class",
        "forname",
        "getclass",
        "new",
        "processbuilder",
        "process",
        "execute",
        "evaluate",
        "eval",
        "groovyshell",
        "thread",
        "file",
        "files",
        "paths",
        "url",
        "invokemethod",
        "metaclass",
        "getmetaclass",
        "java",
        "javax",
        "groovy",
        "sun",
        "def",
        "var",
        "import",
        "this",
        "super",
        "getruntime",
        "exec",
        "static",
        "script",
        "binding",
        "classloader",
    }
)
CODE_PUNCT = {
    "{": "closure",
    "}": "closure",
    "->": "lambda",
    ";": "multiple statements",
    "=": "assignment",
    ".&": "method pointer",
    ".@": "field access",
    "@": "annotation",
    "$": "interpolation",
    "\\": "escape",
    "/": "slashy string or division",
}
# Refused on read-only routes: they change the graph or its storage.
WRITE_STEPS = frozenset(
    {
        "addv",
        "adde",
        "property",
        "drop",
        "mergev",
        "mergee",
        "io",
        "call",
        "addvertex",
        "addedge",
        "remove",
        "tx",
        "commit",
        "rollback",
        "program",
        "read",
        "write",
        "withoutstrategies",
        "graph",
        "close",
    }
)
TERMINAL_STEPS = frozenset(
    {"tolist", "toset", "tobulkset", "next", "trynext", "iterate", "hasnext", "explain"}
)
_PAIR = {"(": ")", "[": "]"}


class _Unreadable(ValueError):
    pass


def tokenize(text: str) -> list[tuple[str, str, int, int]]:
    """Significant tokens (kind, text, start, end); raises on what it cannot read."""
    out: list[tuple[str, str, int, int]] = []
    if re.search(r"\\u", text):
        # SECURITY: Groovy turns \uXXXX into a character before it reads the script, so
        # '\u0027' would close a string the guard reads as open.
        raise _Unreadable("unicode escape (\\u) in a Gremlin script")
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _Unreadable(f"unreadable Gremlin at offset {pos}")
        kind, end = m.lastgroup or "", m.end()
        if kind == "badblock":
            raise _Unreadable(f"unterminated comment at offset {pos}")
        if kind == "string" and m.group()[0] == '"' and re.search(r"(?<!\\)(?:\\\\)*\$", m.group()):
            raise _Unreadable("GString interpolation ($ in a double-quoted string)")
        if kind not in ("space", "line", "block"):
            out.append((kind, m.group(), pos, end))
        pos = end
    return out


def _chain_problem(tokens: list[tuple[str, str, int, int]]) -> tuple[str, int]:
    """Check the top level is one `name(.name | (...) | [...])*` chain: (problem, index of
    the last top-level '.' before a terminal step, or -1)."""
    state, i, terminal_dot = "name", 0, -1
    while i < len(tokens):
        kind, text = tokens[i][0], tokens[i][1]
        if state == "name":
            if kind != "word":
                return "a script must be a single traversal", -1
            if i > 0 and text.lower() in TERMINAL_STEPS and terminal_dot < 0:
                terminal_dot = i - 1
            state = "after"
        elif text == ".":
            state = "name"
        elif text in _PAIR:
            stack = [_PAIR[text]]
            while stack:
                i += 1
                if i >= len(tokens):
                    return "unbalanced brackets", -1
                t = tokens[i][1]
                if t in _PAIR:
                    stack.append(_PAIR[t])
                elif t in (")", "]") and tokens[i][0] == "punct" and stack.pop() != t:
                    return "unbalanced brackets", -1
        else:
            return "a script must be a single traversal", -1
        i += 1
    if state == "name":
        return "a script must be a single traversal", -1
    return "", terminal_dot


def judge_gremlin(
    text: str,
    policy: GraphPolicy,
    *,
    bindings: dict[str, Any] | None = None,
    tenant: str | None = None,
) -> GraphDecision:
    """Allow, rewrite (tenant binding, `.limit(n)`) or refuse one Gremlin script."""
    params = dict(bindings or {})

    def deny(code: ErrorCode, reason: str) -> GraphDecision:
        return GraphDecision(code, reason, text, params, False)

    try:
        tokens = tokenize(text)
    except _Unreadable as exc:
        return deny(ErrorCode.SQL_BLOCKED, str(exc))
    if not tokens:
        return deny(ErrorCode.SQL_BLOCKED, "empty Gremlin script")
    for i, (kind, tok, _, _) in enumerate(tokens):
        if tok == "[" and i > 0 and (tokens[i - 1][0] == "word" or tokens[i - 1][1] in ")]"):
            # x['class'] reads any property by string: a way around the word lists.
            return deny(ErrorCode.SQL_BLOCKED, "subscript access ('[') is not allowed")
        if kind == "punct" and tok in CODE_PUNCT:
            return deny(ErrorCode.SQL_BLOCKED, f"{CODE_PUNCT[tok]} ('{tok}') is not allowed")
        if kind == "punct" and tok in ("?.", "*."):
            return deny(ErrorCode.SQL_BLOCKED, f"Groovy operator '{tok}' is not allowed")
        if kind == "word":
            low = tok.lower()
            if low in CODE_WORDS:
                return deny(ErrorCode.SQL_BLOCKED, f"'{tok}' is not allowed (code execution)")
            if policy.read_only and low in WRITE_STEPS:
                reason = f"step {tok}() is not allowed on a read-only route"
                return deny(ErrorCode.SQL_BLOCKED, reason)
    problem, terminal_dot = _chain_problem(tokens)
    if problem:
        return deny(ErrorCode.SQL_BLOCKED, problem)
    try:
        # SECURITY: arguments parse too: `__.'drop'()` or `(x as Y)` are not plain steps.
        tree = parse(tokens)
    except GremlinShapeError as exc:
        return deny(ErrorCode.SQL_BLOCKED, f"not understood: {exc}")
    names = set(params) | ({policy.tenant_parameter} if policy.tenant_parameter else set())
    if policy.strict:
        problem = script_problem(tree, names, None, None)
        if problem:
            return deny(ErrorCode.SQL_BLOCKED, problem)

    rewritten = False
    if policy.tenant_parameter is not None:
        name = policy.tenant_parameter
        used = any(
            k == "word" and t == name and (i == 0 or tokens[i - 1][1] != ".")
            for i, (k, t, _, _) in enumerate(tokens)
        )
        if not used:
            return deny(ErrorCode.TENANT_MISMATCH, f"script must use the '{name}' binding")
        problem = script_problem(tree, names, policy.scope_property, name)
        if problem:
            return deny(ErrorCode.TENANT_MISMATCH, problem)
        code, why, params, changed = pin_tenant(params, name, tenant)
        if code is not None:
            return deny(code, why)
        rewritten = changed
    if policy.max_rows is not None:
        # limit(k).limit(n) yields min(k, n) rows, so appending is always safe.
        at = tokens[terminal_dot][2] if terminal_dot >= 0 else tokens[-1][3]
        text = f"{text[:at]}.limit({policy.max_rows}){text[at:]}"
        rewritten = True
    return GraphDecision(None, "", text, params, rewritten)
