"""The Cypher guard: refuse write and admin clauses and unknown procedures and functions
on read-only routes, pin the tenant parameter and prove every node pattern constrained by
it (cypher_scope), and cap result rows with an outer LIMIT.

Keywords are judged on tokens (see cypher_lex), so `'DELETE'`, `// DELETE`, `` `DELETE` ``,
`$delete`, `n.delete`, `{delete: 1}` and `:Delete` labels never match. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from proxy.graph.cypher_lex import (
    BACKTICK,
    NUMBER,
    PARAM,
    PUNCT,
    WORD,
    CypherSyntaxError,
    Token,
    depths,
    tokenize,
)
from proxy.graph.cypher_scope import scope_problem
from proxy.graph.policy import GraphDecision, GraphPolicy, pin_tenant
from proxy.model.errors import ErrorCode

# Clause keywords refused on read-only routes, with the name the reason shows.
WRITE_CLAUSES: dict[str, str] = {
    "CREATE": "CREATE",
    "MERGE": "MERGE",
    "DELETE": "DELETE",
    "DETACH": "DETACH DELETE",
    "NODETACH": "NODETACH DELETE",
    "SET": "SET",
    "REMOVE": "REMOVE",
    "DROP": "DROP",
    "INSERT": "INSERT",
    "FOREACH": "FOREACH",
    "LOAD": "LOAD CSV",
    "TRANSACTIONS": "CALL { } IN TRANSACTIONS",
    "ALTER": "ALTER (admin)",
    "GRANT": "GRANT (admin)",
    "DENY": "DENY (admin)",
    "REVOKE": "REVOKE (admin)",
    "RENAME": "RENAME (admin)",
    "START": "START (admin)",
    "STOP": "STOP (admin)",
    "TERMINATE": "TERMINATE (admin)",
    "ENABLE": "ENABLE (admin)",
    "DEALLOCATE": "DEALLOCATE (admin)",
    "REALLOCATE": "REALLOCATE (admin)",
    "USE": "USE (switches database)",
}
# SHOW is allowed only for schema listings; SHOW USERS/DATABASES/... are admin.
_SHOW_OK = frozenset(
    {
        "INDEX",
        "INDEXES",
        "CONSTRAINT",
        "CONSTRAINTS",
        "FUNCTION",
        "FUNCTIONS",
        "PROCEDURE",
        "PROCEDURES",
    }
)
_CLAUSE_START = frozenset({"MATCH", "OPTIONAL", "WITH", "UNWIND", "CALL", "RETURN", "USE", "SHOW"})
_NAME = (WORD, BACKTICK)


def _is_label(tokens: list[Token], i: int) -> bool:
    """Word after ':' (label, type, map value) or in a label chain `:A|B&C`."""
    while i > 0:
        prev = tokens[i - 1]
        if prev.kind != PUNCT:
            return False
        if prev.text in (":", "::"):
            return True
        if prev.text not in ("|", "&", "!") or i < 2 or tokens[i - 2].kind not in _NAME:
            return False
        i -= 2
    return False


def keyword_positions(tokens: list[Token]) -> list[int]:
    """Indexes of words that stand where a keyword can: not a property (`n.set`), a map key
    (`{set: 1}`), a label (`:Set`) or an alias (`AS set`)."""
    out: list[int] = []
    last = len(tokens) - 1
    for i, tok in enumerate(tokens):
        if tok.kind != WORD:
            continue
        if i > 0:
            prev = tokens[i - 1]
            if (prev.kind == PUNCT and prev.text == ".") or (
                prev.kind == WORD and prev.upper == "AS"
            ):
                continue
            if _is_label(tokens, i):
                continue
        if i < last and tokens[i + 1].kind == PUNCT and tokens[i + 1].text == ":":
            continue
        out.append(i)
    return out


def _qualified_name(tokens: list[Token], i: int) -> tuple[str, int]:
    """`a.b.c` starting at i: (name, index after it)."""
    parts = [tokens[i].name]
    j = i + 1
    while j + 1 < len(tokens) and tokens[j].text == "." and tokens[j + 1].kind in _NAME:
        parts.append(tokens[j + 1].name)
        j += 2
    return ".".join(parts), j


# Words that may stand before '(' without being a function call.
PAREN_KEYWORDS = frozenset(
    """MATCH MERGE CREATE WHERE AND OR XOR NOT IN WITH RETURN UNWIND DISTINCT BY SKIP LIMIT
    OFFSET WHEN THEN ELSE CASE DELETE DETACH NODETACH SET REMOVE FOREACH FOR ON CALL YIELD
    IS CONTAINS STARTS ENDS AS OPTIONAL EXPLAIN PROFILE USE UNION SHORTEST ELEMENTS
    REPEATABLE DIFFERENT""".split()  # noqa: SIM905 (a word list reads better)
)


# Operators Neo4j never reads as a function name, wherever they stand (`{a: NOT (x)}`).
OPERATOR_WORDS = frozenset(
    {"NOT", "AND", "OR", "XOR", "IN", "IS", "WHEN", "THEN", "ELSE", "CASE", "CONTAINS"}
)


def _index_hint(tokens: list[Token], i: int) -> bool:
    """`USING [TEXT|RANGE|POINT] INDEX [SEEK] n:Label(prop)`: a label, not a function."""
    return (
        i >= 3
        and tokens[i - 1].text == ":"
        and tokens[i - 2].kind in _NAME
        and tokens[i - 3].kind == WORD
        and tokens[i - 3].upper in ("INDEX", "SEEK")
    )


def _blocked_reason(tokens: list[Token], keywords: list[int], policy: GraphPolicy) -> str:
    """The first refused clause, procedure or function, or ''."""
    if policy.read_only:
        for i in keywords:
            word = tokens[i].upper
            clause = WRITE_CLAUSES.get(word)
            if clause is not None:
                return f"{clause} is not allowed on a read-only route"
            if word == "SHOW":
                ahead = {t.upper for t in tokens[i + 1 : i + 4] if t.kind == WORD}
                if not ahead & _SHOW_OK:
                    return "SHOW (admin) is not allowed on a read-only route"
    keyword_set = set(keywords)
    for i, tok in enumerate(tokens):
        if tok.kind not in _NAME or (i > 0 and tokens[i - 1].text == "."):
            continue  # not a name, or the middle of a.b.c
        after_call = i > 0 and tokens[i - 1].upper == "CALL" and (i - 1) in keyword_set
        if not after_call and (i + 1 >= len(tokens) or tokens[i + 1].text not in (".", "(")):
            continue  # a plain name: neither a procedure nor a function call
        name, j = _qualified_name(tokens, i)
        invoked = j < len(tokens) and tokens[j].text == "("
        if after_call:
            why = policy.procedure_refusal(name)
        elif invoked and not (
            (tok.kind == WORD and tok.upper in OPERATOR_WORDS)
            or (i in keyword_set and tok.kind == WORD and tok.upper in PAREN_KEYWORDS)
            or _index_hint(tokens, i)
        ):
            why = policy.function_refusal(name)
        else:
            continue
        if why:
            return why
    return ""


def _deny(code: ErrorCode, reason: str, text: str, params: dict[str, Any]) -> GraphDecision:
    return GraphDecision(code, reason, text, params, False)


def judge_cypher(
    text: str,
    policy: GraphPolicy,
    *,
    parameters: dict[str, Any] | None = None,
    tenant: str | None = None,
) -> GraphDecision:
    """Allow, rewrite (tenant parameter, LIMIT) or refuse one Cypher statement."""
    params = dict(parameters or {})
    try:
        tokens = tokenize(text)
        depth = depths(tokens)
    except CypherSyntaxError as exc:
        return _deny(ErrorCode.SQL_BLOCKED, f"unreadable Cypher: {exc}", text, params)
    if not tokens:
        return _deny(ErrorCode.SQL_BLOCKED, "empty Cypher statement", text, params)
    end = len(tokens)
    if tokens[-1].text == ";":
        end -= 1  # one trailing ';' is harmless
    if any(t.kind == PUNCT and t.text == ";" for t in tokens[:end]):
        return _deny(ErrorCode.SQL_BLOCKED, "multiple statements are not allowed", text, params)
    tokens, depth = tokens[:end], depth[:end]
    keywords = keyword_positions(tokens)
    reason = _blocked_reason(tokens, keywords, policy)
    if reason:
        return _deny(ErrorCode.SQL_BLOCKED, reason, text, params)

    rewritten = False
    if policy.tenant_parameter is not None:
        name = policy.tenant_parameter
        if not any(t.kind == PARAM and t.name == name for t in tokens):
            return _deny(
                ErrorCode.TENANT_MISMATCH, f"statement must use the ${name} parameter", text, params
            )
        problem = scope_problem(tokens, depth, keywords, policy)
        if problem:
            return _deny(ErrorCode.TENANT_MISMATCH, problem, text, params)
        code, why, params, changed = pin_tenant(params, name, tenant)
        if code is not None:
            return _deny(code, why, text, params)
        rewritten = changed
    if policy.max_rows is not None:
        new_text = limit_rows(text, tokens, depth, keywords, policy.max_rows, params)
        if new_text != text:
            text, rewritten = new_text, True
    return GraphDecision(None, "", text, params, rewritten)


def _int_literal(tok: Token) -> int | None:
    digits = tok.text.replace("_", "")
    if tok.kind != NUMBER:
        return None
    if digits.isdigit():
        return int(digits)
    if digits[:2].lower() == "0x":
        return int(digits[2:], 16)
    return None


def limit_rows(
    text: str,
    tokens: list[Token],
    depth: list[int],
    keywords: list[int],
    cap: int,
    params: dict[str, Any],
) -> str:
    """Text whose outer RETURN yields at most `cap` rows. No top-level RETURN (a standalone
    CALL, SHOW): unchanged, the response side must cap rows."""
    top = [i for i in keywords if depth[i] == 0]
    returns = [i for i in top if tokens[i].upper == "RETURN"]
    if not returns:
        return text
    last = tokens[-1]
    if any(tokens[i].upper == "UNION" for i in top):
        # LIMIT after the last branch would bind that branch only: limit the whole union.
        first = next((i for i in top if tokens[i].upper in _CLAUSE_START), 0)
        body_start = tokens[first].start
        return (
            f"{text[:body_start]}CALL {{ {text[body_start : last.end]} }} RETURN * LIMIT {cap}"
            f"{text[last.end :]}"
        )
    limits = [i for i in top if i > returns[-1] and tokens[i].upper == "LIMIT"]
    if not limits:
        return f"{text[: last.end]} LIMIT {cap}{text[last.end :]}"
    expr = tokens[limits[-1] + 1 :]
    if len(expr) == 1:
        value = _int_literal(expr[0])
        if expr[0].kind == PARAM:
            value = params.get(expr[0].name)
            value = value if isinstance(value, int) and not isinstance(value, bool) else None
        if value is not None and 0 <= value <= cap:
            return text
        if expr[0].kind in (NUMBER, PARAM):
            return f"{text[: expr[0].start]}{cap}{text[expr[0].end :]}"
    if not expr:
        return text  # `RETURN x LIMIT` alone: the server rejects it
    start, stop = expr[0].start, expr[-1].end
    inner = text[start:stop]
    return f"{text[:start]}CASE WHEN ({inner}) < {cap} THEN ({inner}) ELSE {cap} END{text[stop:]}"
