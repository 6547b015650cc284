"""PostgreSQL text read by PostgreSQL's own parser (libpg_query through pglast) into the
facts the judge decides on. What the database will parse is what is judged: there is no
second grammar to disagree with it.

The tree comes as JSON from libpg_query (one C call); the walk below visits every node,
so no relation, call or operator can hide in a clause this module does not know about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pglast import parser as pg

PARSER = f"libpg_query {pg.get_postgresql_version()[0]} (pglast)"

WRITE_NODES = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})


@dataclass(frozen=True, slots=True)
class Name:
    """A qualified name as PostgreSQL resolved the spelling (unquoted parts folded)."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True, slots=True)
class Call:
    name: Name
    in_from: bool  # a table function (FROM / ROWS FROM)


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a text and everything in it that the judge reads."""

    node: str  # libpg_query node name: SelectStmt, ExplainStmt, ...
    kind: str  # "select", "insert", "explain", "create", ...
    relations: tuple[Name, ...]
    calls: tuple[Call, ...]
    operators: tuple[Name, ...]
    sample_methods: tuple[str, ...]  # TABLESAMPLE methods
    nested: tuple[str, ...]  # statement nodes below the root (data-modifying CTEs, ...)
    into: bool  # SELECT ... INTO
    locking: bool  # FOR UPDATE / SHARE / ...
    explain_analyze: bool
    explain_target: Statement | None
    prepared: tuple[str, ...]  # PREPARE / EXECUTE / DEALLOCATE names
    copy_to_client: bool  # COPY (query) TO STDOUT / COPY t TO STDOUT


@dataclass(frozen=True, slots=True)
class Parsed:
    statements: tuple[Statement, ...]
    error: str | None = None  # "SQL does not parse (...)"; never the text itself


def _kind(node: str) -> str:
    for prefix in ("Create", "Alter", "Drop"):
        if node.startswith(prefix):
            return prefix.lower()
    special = {
        "SelectStmt": "select", "VariableShowStmt": "show", "VariableSetStmt": "set",
        "TransactionStmt": "transaction", "ExplainStmt": "explain", "CopyStmt": "copy",
        "TruncateStmt": "truncate", "GrantStmt": "grant", "GrantRoleStmt": "grant",
        "IndexStmt": "create", "ViewStmt": "create", "RuleStmt": "create",
        "CompositeTypeStmt": "create", "DefineStmt": "create", "RenameStmt": "alter",
        "CommentStmt": "comment", "DoStmt": "do", "CallStmt": "call",
        "VacuumStmt": "vacuum", "ExecuteStmt": "execute", "PrepareStmt": "prepare",
        "DeallocateStmt": "deallocate", "DeclareCursorStmt": "declare",
        "FetchStmt": "fetch", "ClosePortalStmt": "close", "LockStmt": "lock",
        "NotifyStmt": "notify", "ListenStmt": "listen", "UnlistenStmt": "unlisten",
        "DiscardStmt": "discard", "LoadStmt": "load", "CheckPointStmt": "checkpoint",
        "ReindexStmt": "reindex", "ClusterStmt": "cluster", "RefreshMatViewStmt": "refresh",
        "ImportForeignSchemaStmt": "import", "SecLabelStmt": "security label",
        "ReassignOwnedStmt": "reassign", "ConstraintsSetStmt": "set",
    }
    if node in special:
        return special[node]
    return node.removesuffix("Stmt").lower() or "unknown"


def _names(items: list[Any]) -> list[str]:
    return [i["String"]["sval"] for i in items if isinstance(i, dict) and "String" in i]


def _qualified(parts: list[str]) -> Name:
    if len(parts) >= 2:
        return Name(parts[-2], parts[-1])
    return Name(None, parts[-1] if parts else "")


def _truthy_option(elem: dict[str, Any]) -> bool:
    """EXPLAIN (ANALYZE) / (ANALYZE true) / (ANALYZE on) / (ANALYZE 1) all run it.
    SECURITY: a number counts as on whatever its value: it is a constant, which the
    fast paths and the verdict cache may swap for another."""
    arg = elem.get("arg")
    if not arg:
        return True
    if "String" in arg:
        return arg["String"].get("sval", "").lower() not in ("false", "off", "0", "no")
    if "Boolean" in arg:
        return bool(arg["Boolean"].get("boolval", False))
    return True  # fail closed: an option value of an unknown shape counts as on


class _Walk:
    __slots__ = (
        "calls",
        "into",
        "locking",
        "nested",
        "operators",
        "prepared",
        "relations",
        "samples",
    )

    def __init__(self) -> None:
        self.relations: list[Name] = []
        self.calls: list[Call] = []
        self.operators: list[Name] = []
        self.samples: list[str] = []
        self.nested: list[str] = []
        self.into = False
        self.locking = False
        self.prepared: list[str] = []

    def visit(self, value: Any, in_from: bool = False) -> None:
        if isinstance(value, list):
            for item in value:
                self.visit(item, in_from)
            return
        if not isinstance(value, dict):
            return
        if "relname" in value:  # a RangeVar in a typed field (DML target, INTO): unwrapped
            self.relations.append(Name(value.get("schemaname"), value["relname"]))
        for key, body in value.items():
            if key == "RangeVar":
                parts = [body.get(k) for k in ("schemaname", "relname")]
                self.relations.append(Name(parts[0], parts[1] or ""))
                self.visit(body.get("alias"))
                continue
            if key == "FuncCall":
                self.calls.append(Call(_qualified(_names(body.get("funcname", []))), in_from))
                for sub, v in body.items():
                    if sub != "funcname":
                        self.visit(v)
                continue
            if key == "RangeFunction":
                for sub, v in body.items():
                    self.visit(v, sub == "functions")
                continue
            if key == "A_Expr" and body.get("kind") in (
                    "AEXPR_OP", "AEXPR_OP_ANY", "AEXPR_OP_ALL"):
                self.operators.append(_qualified(_names(body.get("name", []))))
            elif key == "SubLink" and body.get("operName"):
                self.operators.append(_qualified(_names(body["operName"])))
            elif key == "RangeTableSample":
                self.samples.append(".".join(_names(body.get("method", []))))
            elif key in WRITE_NODES or (key.endswith("Stmt") and key[0].isupper()
                                        and key != "SelectStmt"):
                self.nested.append(key)
            elif key == "SelectStmt":
                if body.get("intoClause"):
                    self.into = True
                if body.get("lockingClause"):
                    self.locking = True
            if isinstance(body, (dict, list)):
                self.visit(body, in_from and key in ("List", "items"))


def statement(node: str, body: dict[str, Any]) -> Statement:
    w = _Walk()
    target: Statement | None = None
    analyze = False
    copy_out = False
    if node == "ExplainStmt":
        analyze = any(_truthy_option(o["DefElem"]) for o in body.get("options", ())
                      if o.get("DefElem", {}).get("defname") == "analyze")
        (inner, inner_body), = body["query"].items()
        target = statement(inner, inner_body)
    else:
        if node in ("PrepareStmt", "ExecuteStmt", "DeallocateStmt"):
            w.prepared.append(body.get("name") or "")
        if node == "CopyStmt":
            copy_out = not body.get("is_from") and not body.get("filename") \
                and not body.get("is_program")
        if node == "SelectStmt":
            w.into = bool(body.get("intoClause"))
            w.locking = bool(body.get("lockingClause"))
        w.visit(body)
    return Statement(node, _kind(node), tuple(w.relations), tuple(w.calls),
                     tuple(w.operators), tuple(w.samples), tuple(w.nested), w.into,
                     w.locking, analyze, target, tuple(w.prepared), copy_out)


def tree(sql: str) -> list[dict[str, Any]] | str:
    """libpg_query's statements, or the reason the text does not parse (position only)."""
    if "\x00" in sql:
        # SECURITY: libpg_query reads a C string: it would judge only the text before it.
        return "SQL contains a NUL character"
    try:
        doc = orjson.loads(pg.parse_sql_json(sql))
    except pg.ParseError as e:
        # SECURITY: PostgreSQL's message quotes the text near the error; keep the place.
        where = e.args[1] if len(e.args) > 1 and isinstance(e.args[1], int) else len(sql)
        line = sql.count("\n", 0, where) + 1
        column = where - (sql.rfind("\n", 0, where) + 1) + 1
        return f"SQL does not parse (line {line}, column {column}; PostgreSQL's parser)"
    return list(doc.get("stmts", ()))


def parse(sql: str) -> Parsed:
    stmts = tree(sql)
    if isinstance(stmts, str):
        return Parsed((), stmts)
    out = []
    for raw in stmts:
        (node, body), = raw["stmt"].items()
        out.append(statement(node, body))
    return Parsed(tuple(out))


def normalized(sql: str) -> str | None:
    """The text with every constant replaced by $n (libpg_query's normalize); None when
    the text does not parse."""
    if "\x00" in sql:
        return None
    try:
        return pg.normalize(sql)
    except pg.ParseError:
        return None


def scan_constants(sql: str) -> list[tuple[int, int]] | None:
    """(start, end) of every string and number constant as PostgreSQL's lexer cuts them;
    None when the text does not lex."""
    if "\x00" in sql:
        return None
    try:
        toks = pg.scan(sql)
    except pg.ParseError:
        return None
    # pglast turns the lexer's byte offsets into character offsets
    return [(t.start, t.end + 1) for t in toks if t.name in ("SCONST", "ICONST", "FCONST")]
