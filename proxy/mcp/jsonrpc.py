"""JSON-RPC 2.0 as MCP uses it: parse a POST body once, render refusals as JSON-RPC errors,
and check the 2026-07-28 routing headers against the body.

Refusal codes (`error.code`; `error.data.error_code` carries the CallWarden code, see
proxy.model.errors.ERROR_TABLE):

    -32600 TOOL_BAD_REQUEST      (JSON-RPC "invalid request")
    -32602 INVALID_PARAMS        (JSON-RPC "invalid params")
    -32603 INTERNAL_ERROR        (JSON-RPC "internal error")
    -32003 POLICY_DENY           -32004 PERMISSION_DENIED    -32005 AUTH_FAILED
    -32006 TENANT_MISMATCH       -32007 SQL_BLOCKED          -32008 RATE_LIMITED
    -32009 CIRCUIT_OPEN          -32010 TOOL_TIMEOUT         -32011 PLAN_TIMEOUT
    -32012 EXECUTE_TIMEOUT       -32013 COMPOSE_TIMEOUT      -32014 UPSTREAM_UNAVAILABLE
    -32015 DATA_NOT_FOUND        -32016 MAX_ROWS_EXCEEDED    -32017 PLAN_INVALID
    -32018 HOST_NOT_ALLOWED      -32019 ORIGIN_NOT_ALLOWED
    -32020 HEADER_MISMATCH       (MCP's own HeaderMismatch, SEP-2243; HTTP 400)
    -31001 APPROVAL_PENDING      -31002 APPROVAL_DENIED      -31003 APPROVAL_EXPIRED
    -31004 APPROVAL_MISMATCH     (human approval; application codes outside JSON-RPC's
                                 reserved -32768..-32000; `data.approval_id` names it)

The other -320xx codes sit in JSON-RPC's implementation-defined server range, below the
span MCP 2026-07-28 reserves for itself (-32020..-32099; -32002 retired; -32001 is the
SDK's client-side timeout); the approval codes sit outside both, in the application
range. Clients should read `data.error_code`, which is stable.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from proxy.model.call import JsonRpcMessage
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.jsonio import long_number, repeats_a_key

Kind = Literal["request", "notification", "response"]

# Methods whose target the 2026-07-28 `Mcp-Name` header mirrors, and the params key.
NAME_BEARING: dict[str, str] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
}
ROUTING_HEADERS = ("mcp-method", "mcp-name", "mcp-protocol-version")
HEADERS_REQUIRED_FROM = "2026-07-28"
"""The first revision whose POSTs MUST carry `Mcp-Method` (and `Mcp-Name` for the methods
in NAME_BEARING): SEP-2243. Later dates require them too (revisions are ISO dates)."""
_OWS = " \t"


def _bad(message: str) -> ProxyError:
    return ProxyError(ErrorCode.TOOL_BAD_REQUEST, message)


def _mismatch(message: str) -> ProxyError:
    return ProxyError(ErrorCode.HEADER_MISMATCH, message)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # SECURITY: parsers disagree on which duplicate key wins; a body we read one way and
    # the server another would smuggle a tool name past the rules.
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _bad("duplicate key in a JSON object")
    return out


def _no_constant(name: str) -> Any:
    raise _bad(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
"""Built once: `json.loads` with hooks builds a decoder per call."""


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _message(obj: Any, where: str) -> JsonRpcMessage:
    if not isinstance(obj, dict):
        raise _bad(f"{where}: a JSON-RPC message must be an object")
    if obj.get("jsonrpc") != "2.0":
        raise _bad(f'{where}: "jsonrpc" must be "2.0"')
    has_method = "method" in obj
    has_outcome = "result" in obj or "error" in obj
    if has_method:
        if has_outcome:
            raise _bad(f"{where}: a message cannot have both method and result/error")
        method = obj["method"]
        if not isinstance(method, str) or not method:
            raise _bad(f"{where}: method must be a non-empty string")
        params = obj.get("params")
        if "params" in obj and not isinstance(params, (dict, list)):
            raise _bad(f"{where}: params must be an object or an array")
        if "id" not in obj:
            return JsonRpcMessage(None, method, params, obj)
        if not _valid_id(obj["id"]):
            raise _bad(f"{where}: a request id must be a string or an integer")
        return JsonRpcMessage(obj["id"], method, params, obj)
    if not has_outcome:
        raise _bad(f"{where}: neither a request nor a response")
    if "result" in obj and "error" in obj:
        raise _bad(f"{where}: a response cannot have both result and error")
    if "id" not in obj or not (obj["id"] is None or _valid_id(obj["id"])):
        raise _bad(f"{where}: a response id must be a string, an integer or null")
    return JsonRpcMessage(None, None, None, obj)


_SLOW: Any = object()


def _quick(text: str) -> Any:
    """orjson's reading of `text` when it is the checking decoder's too (no integer past
    64 bits, no NaN or Infinity, which orjson refuses, no repeated key), else _SLOW."""
    if long_number(text):
        return _SLOW
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _SLOW
    if repeats_a_key(text, doc):
        raise _bad("duplicate key in a JSON object")
    return doc


def parse_body(body: bytes) -> tuple[tuple[JsonRpcMessage, ...], bool]:
    """(messages, is_batch). Raises ProxyError(TOOL_BAD_REQUEST) naming what is wrong
    (never echoing the body)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"body is not UTF-8 (byte {exc.start})") from None
    doc = _quick(text)
    if doc is _SLOW:  # the checking parse, for its verdict and its error messages
        try:
            doc = _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            raise _bad(f"malformed JSON at line {exc.lineno} column {exc.colno}") from None
        except RecursionError:
            raise _bad("JSON nested too deeply") from None
    if isinstance(doc, list):
        if not doc:
            raise _bad("empty batch")
        return tuple(_message(m, f"batch[{i}]") for i, m in enumerate(doc)), True
    return (_message(doc, "body"),), False


def kind(message: JsonRpcMessage) -> Kind:
    if message.method is None:
        return "response"
    return "notification" if message.id is None else "request"


def error_response(
    id: Any, error: ProxyError, route: str, trace_id: str, *, message: str | None = None
) -> dict[str, Any]:
    """The JSON-RPC error object for a refusal (send with HTTP 200 on MCP routes)."""
    spec = error.spec
    data: dict[str, Any] = {
        "error_code": str(error.code),
        "retryable": spec.retryable,
        "route": route,
        "trace_id": trace_id,
    }
    if error.data:
        data.update(error.data)
    if error.retry_after_s is not None:
        data["retry_after_ms"] = max(0, round(error.retry_after_s * 1000))
    return {
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": spec.jsonrpc_code, "message": message or error.message, "data": data},
    }


def decode_header_value(value: str) -> str | None:
    """An `Mcp-Name` value: verbatim, or the UTF-8 payload of `=?base64?...?=` (the SDK's
    encoding for non-ASCII names); None when the encoding is corrupt."""
    if not (value.startswith("=?base64?") and value.endswith("?=")):
        return value
    payload = value[9:-2]
    try:
        raw = base64.b64decode(payload, validate=True)
        if base64.b64encode(raw).decode("ascii") != payload:
            return None
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def headers_required(version: str | None) -> bool:
    """A protocol version (the `MCP-Protocol-Version` header) whose requests must carry
    the standard headers. Only a well-formed date qualifies; anything else is the server's
    to refuse (older sessions send none of these headers)."""
    if version is None:
        return False
    v = version.strip(_OWS)
    return len(v) == 10 and v[4] == v[7] == "-" and v.replace("-", "").isdigit() and (
        v >= HEADERS_REQUIRED_FROM
    )


def check_routing_headers(headers: Mapping[str, str], messages: tuple[JsonRpcMessage, ...]) -> None:
    """Refuse (HEADER_MISMATCH: HTTP 400, JSON-RPC -32020) a request whose `Mcp-Method` /
    `Mcp-Name` headers disagree with its body, or, on a revision that requires them
    (SEP-2243), lack them: policy is judged on the body, and a header must not steer the
    server to something else. Values are compared without surrounding whitespace (RFC 9110
    5.5) and case-sensitively. `headers` must be case-insensitive (CIMultiDictProxy)."""
    method_header = headers.get("Mcp-Method")
    name_header = headers.get("Mcp-Name")
    required = headers_required(headers.get("Mcp-Protocol-Version"))
    if method_header is None and name_header is None:
        if required and any(m.method is not None for m in messages):
            raise _mismatch("Mcp-Method header missing (required from protocol 2026-07-28)")
        return
    if len(messages) != 1 or messages[0].method is None:
        raise _mismatch("Mcp-Method/Mcp-Name headers need a single request or notification")
    msg = messages[0]
    if method_header is None:
        raise _mismatch("Mcp-Name header without Mcp-Method")
    if method_header.strip(_OWS) != msg.method:
        raise _mismatch("Mcp-Method header does not match the body's method")
    key = NAME_BEARING.get(msg.method or "")
    if key is None:
        if name_header is not None:
            raise _mismatch("Mcp-Name header on a method that names nothing")
        return
    body_value = msg.params.get(key) if isinstance(msg.params, dict) else None
    if name_header is None:
        if body_value is not None:
            raise _mismatch("Mcp-Name header missing")
        return
    if decode_header_value(name_header.strip(_OWS)) != body_value:
        raise _mismatch(f"Mcp-Name header does not match the body's {key}")
