"""The one error table: every refusal CallWarden makes is one of these codes.

Each protocol renders the same `ProxyError` its own way (HTTP JSON, JSON-RPC error,
PostgreSQL ErrorResponse), so status, JSON-RPC code, SQLSTATE and retryability live
together here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    POLICY_DENY = "POLICY_DENY"
    RATE_LIMITED = "RATE_LIMITED"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    TOOL_TIMEOUT = "TOOL_TIMEOUT"
    TOOL_BAD_REQUEST = "TOOL_BAD_REQUEST"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    PLAN_INVALID = "PLAN_INVALID"
    SQL_BLOCKED = "SQL_BLOCKED"
    TENANT_MISMATCH = "TENANT_MISMATCH"
    AUTH_FAILED = "AUTH_FAILED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    DATA_NOT_FOUND = "DATA_NOT_FOUND"
    INVALID_PARAMS = "INVALID_PARAMS"
    MAX_ROWS_EXCEEDED = "MAX_ROWS_EXCEEDED"
    PLAN_TIMEOUT = "PLAN_TIMEOUT"
    EXECUTE_TIMEOUT = "EXECUTE_TIMEOUT"
    COMPOSE_TIMEOUT = "COMPOSE_TIMEOUT"
    HEADER_MISMATCH = "HEADER_MISMATCH"
    HOST_NOT_ALLOWED = "HOST_NOT_ALLOWED"
    ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"
    APPROVAL_PENDING = "APPROVAL_PENDING"
    APPROVAL_DENIED = "APPROVAL_DENIED"
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    APPROVAL_MISMATCH = "APPROVAL_MISMATCH"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    http_status: int
    jsonrpc_code: int
    sqlstate: str
    retryable: bool


# JSON-RPC: the spec's own codes where they fit (-32600 invalid request, -32602 invalid
# params, -32603 internal, and MCP's -32020 HeaderMismatch, SEP-2243), else
# -32003..-32019 in the server range: MCP reserves -32020..-32099 for its own meanings
# (and retired -32002; the SDK's client timeout is -32001).
ERROR_TABLE: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.POLICY_DENY: ErrorSpec(403, -32003, "42501", False),
    ErrorCode.PERMISSION_DENIED: ErrorSpec(403, -32004, "42501", False),
    ErrorCode.AUTH_FAILED: ErrorSpec(401, -32005, "28000", False),
    ErrorCode.TENANT_MISMATCH: ErrorSpec(403, -32006, "42501", False),
    ErrorCode.SQL_BLOCKED: ErrorSpec(403, -32007, "42501", False),
    ErrorCode.RATE_LIMITED: ErrorSpec(429, -32008, "53400", True),
    ErrorCode.CIRCUIT_OPEN: ErrorSpec(503, -32009, "08006", True),
    ErrorCode.TOOL_TIMEOUT: ErrorSpec(504, -32010, "57014", True),
    ErrorCode.PLAN_TIMEOUT: ErrorSpec(504, -32011, "57014", False),
    ErrorCode.EXECUTE_TIMEOUT: ErrorSpec(504, -32012, "57014", False),
    ErrorCode.COMPOSE_TIMEOUT: ErrorSpec(504, -32013, "57014", False),
    ErrorCode.UPSTREAM_UNAVAILABLE: ErrorSpec(502, -32014, "08006", True),
    ErrorCode.DATA_NOT_FOUND: ErrorSpec(404, -32015, "42P01", False),
    ErrorCode.MAX_ROWS_EXCEEDED: ErrorSpec(422, -32016, "54000", False),
    ErrorCode.PLAN_INVALID: ErrorSpec(400, -32017, "22023", False),
    ErrorCode.TOOL_BAD_REQUEST: ErrorSpec(400, -32600, "08P01", False),
    ErrorCode.INVALID_PARAMS: ErrorSpec(422, -32602, "22023", False),
    ErrorCode.INTERNAL_ERROR: ErrorSpec(500, -32603, "XX000", False),
    # MCP 2026-07-28 (SEP-2243): an Mcp-Method / Mcp-Name header missing or disagreeing
    # with the body is HTTP 400 with MCP's own HeaderMismatch code.
    ErrorCode.HEADER_MISMATCH: ErrorSpec(400, -32020, "08P01", False),
    # DNS rebinding (MCP transport spec): a Host that does not name the proxy is a request
    # meant for another server (421 Misdirected Request); a browser Origin not listed is 403.
    ErrorCode.HOST_NOT_ALLOWED: ErrorSpec(421, -32018, "08004", False),
    ErrorCode.ORIGIN_NOT_ALLOWED: ErrorSpec(403, -32019, "08004", False),
    # Human approval (proxy/approval/): JSON-RPC codes outside the reserved -32768..-32000
    # range (application-defined; the server range above is full). A pending approval is
    # 428 Precondition Required: retry with X-CallWarden-Approval once a person approved.
    ErrorCode.APPROVAL_PENDING: ErrorSpec(428, -31001, "55000", True),
    ErrorCode.APPROVAL_DENIED: ErrorSpec(403, -31002, "42501", False),
    ErrorCode.APPROVAL_EXPIRED: ErrorSpec(403, -31003, "42501", False),
    ErrorCode.APPROVAL_MISMATCH: ErrorSpec(403, -31004, "42501", False),
}
TRANSPORT_CODES = frozenset(
    {ErrorCode.HEADER_MISMATCH, ErrorCode.HOST_NOT_ALLOWED, ErrorCode.ORIGIN_NOT_ALLOWED}
)
"""Refusals of the HTTP exchange itself: MCP routes answer them with their HTTP status
(and a JSON-RPC error body), not with HTTP 200."""

PHASE_TIMEOUTS: dict[str, ErrorCode] = {
    "plan": ErrorCode.PLAN_TIMEOUT,
    "execute": ErrorCode.EXECUTE_TIMEOUT,
    "compose": ErrorCode.COMPOSE_TIMEOUT,
}


class ProxyError(Exception):
    """A refusal with its code. `message` is shown to the caller: never put a secret,
    a header value or a whole request body in it."""

    __slots__ = ("code", "data", "extra_headers", "http_status", "message", "retry_after_s")

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retry_after_s: float | None = None,
        extra_headers: dict[str, str] | None = None,
        http_status: int | None = None,
        data: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.extra_headers = extra_headers
        self.data = data
        """More fields for the error body / JSON-RPC `data` (e.g. approval_id): never secrets."""
        self.http_status = http_status or ERROR_TABLE[code].http_status
        """The table's status, unless a transport-level problem needs its own (413)."""

    @property
    def spec(self) -> ErrorSpec:
        return ERROR_TABLE[self.code]
