"""The conformance target: an MCP server on the official Python SDK (`MCPServer`) with the
tools, resources and prompts the official conformance suite's server scenarios call, for
both protocol revisions (2025-11-25 sessions and 2026-07-28 stateless requests).

Written from the scenario descriptions of `@modelcontextprotocol/conformance` (what each
scenario asks the server to implement); the SDK does the protocol. Run alone:
`python -m tests.conformance.server --port N`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any

import mcp.types as types
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp.server.mcpserver.resolve import Resolve, Sample
from mcp.types import (
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    SamplingMessage,
    TextContent,
    TextResourceContents,
)

PATH = "/mcp"
# A 1x1 PNG and a tiny WAV, built here so the test data is self-evident.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5f0e1c60000000049454e44ae426082"
    )
).decode()
WAV = base64.b64encode(
    b"RIFF"
    + (36 + 2).to_bytes(4, "little")
    + b"WAVEfmt "
    + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little")
    + (1).to_bytes(2, "little")
    + (8000).to_bytes(4, "little")
    + (16000).to_bytes(4, "little")
    + (2).to_bytes(2, "little")
    + (16).to_bytes(2, "little")
    + b"data"
    + (2).to_bytes(4, "little")
    + b"\x00\x00"
).decode()

SCENARIO_TOOLS = (
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_error_handling",
    "test_tool_with_progress",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_header_param",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_capabilities",
    "test_input_required_result_request_state",
    "test_input_required_result_tampered_state",
    "test_missing_capability",
    "test_trigger_tool_change",
    "test_trigger_prompt_change",
)
"""Every tool this server lists (a realistic route names each with its roles)."""

SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


def build_server() -> MCPServer:
    # Requests to the client (sampling, elicitation) name the call they belong to
    # (`related_request_id`), so they ride that call's own stream; without it they go to
    # the session's GET stream, which a client may not have opened yet (a hang).
    server = MCPServer("callwarden-conformance")

    @server.tool(description="Returns one text item.")
    def test_simple_text() -> str:
        return "This is a simple text response for testing."

    @server.tool(description="Returns one PNG image.")
    def test_image_content() -> list[Any]:
        return [ImageContent(type="image", data=PNG, mime_type="image/png")]

    @server.tool(description="Returns one WAV clip.")
    def test_audio_content() -> list[Any]:
        return [AudioContent(type="audio", data=WAV, mime_type="audio/wav")]

    @server.tool(description="Returns an embedded text resource.")
    def test_embedded_resource() -> list[Any]:
        return [_embedded("test://embedded-resource", "This is an embedded resource content.")]

    @server.tool(description="Returns text, an image and a resource.")
    def test_multiple_content_types() -> list[Any]:
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=PNG, mime_type="image/png"),
            _embedded(
                "test://mixed-content-resource",
                json.dumps({"test": "data", "value": 123}),
                "application/json",
            ),
        ]

    @server.tool(description="Sends three log messages while it runs.")
    async def test_tool_with_logging(ctx: Context) -> str:
        for i, text in enumerate(
            ("Tool execution started", "Tool processing data", "Tool execution completed")
        ):
            if i:
                await asyncio.sleep(0.05)
            await ctx.info(text)
        return "Tool with logging executed successfully"

    @server.tool(description="Always fails.")
    def test_error_handling() -> CallToolResult:
        return CallToolResult(
            content=[
                TextContent(
                    type="text", text="This tool intentionally returns an error for testing"
                )
            ],
            is_error=True,
        )

    @server.tool(description="Reports progress 0, 50 and 100 of 100.")
    async def test_tool_with_progress(ctx: Context) -> str:
        for i, step in enumerate((0, 50, 100)):
            if i:
                await asyncio.sleep(0.05)
            await ctx.report_progress(step, 100)
        return "Tool with progress completed"

    @server.tool(description="Asks the client's LLM.")
    async def test_sampling(prompt: str, ctx: Context) -> str:
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        content = result.content
        text = getattr(content, "text", None) or json.dumps(
            content.model_dump() if hasattr(content, "model_dump") else str(content)
        )
        return f"LLM response: {text}"

    @server.tool(description="Asks the user for a username and an email.")
    async def test_elicitation(message: str, ctx: Context) -> str:
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        result = await ctx.session.elicit_form(
            message=message, requested_schema=schema, related_request_id=ctx.request_id
        )
        return f"User response: action={result.action}, content={json.dumps(result.content)}"

    @server.tool(description="Elicitation with a default for every primitive type.")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "John Doe"},
                "age": {"type": "integer", "default": 30},
                "score": {"type": "number", "default": 95.5},
                "status": {
                    "type": "string",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active",
                },
                "verified": {"type": "boolean", "default": True},
            },
        }
        result = await ctx.session.elicit_form(
            message="Please review and update the form fields with defaults",
            requested_schema=schema,
            related_request_id=ctx.request_id,
        )
        return (
            f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"
        )

    @server.tool(description="Elicitation with the five enum forms.")
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        schema = {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {
                    "type": "string",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"},
                    ],
                },
                "legacyEnum": {
                    "type": "string",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]
                    },
                },
            },
        }
        result = await ctx.session.elicit_form(
            message="Please pick from the enum fields",
            requested_schema=schema,
            related_request_id=ctx.request_id,
        )
        return (
            f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"
        )

    server.add_tool(
        _schema_tool,
        name="json_schema_2020_12_tool",
        description="Tool with JSON Schema 2020-12 features",
    )
    server._tool_manager.get_tool("json_schema_2020_12_tool").parameters = SCHEMA_2020_12
    server.add_tool(
        _schema_tool, name="test_header_param", description="Region also sent as a header"
    )
    server._tool_manager.get_tool("test_header_param").parameters = {
        "type": "object",
        "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
        "required": ["region"],
    }

    @server.resource(
        "test://static-text",
        name="static-text",
        description="A static text resource",
        mime_type="text/plain",
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource(
        "test://static-binary",
        name="static-binary",
        description="A static binary resource (PNG)",
        mime_type="image/png",
    )
    def static_binary() -> bytes:
        return base64.b64decode(PNG)

    @server.resource(
        "test://watched-resource",
        name="watched-resource",
        description="A resource clients subscribe to",
        mime_type="text/plain",
    )
    def watched() -> str:
        return "watched"

    @server.resource(
        "test://template/{id}/data",
        name="template-data",
        description="Data by id",
        mime_type="application/json",
    )
    def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.prompt(description="A prompt without arguments")
    def test_simple_prompt() -> list[Message]:
        return [UserMessage("This is a simple prompt for testing.")]

    @server.prompt(description="A prompt with two arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[Message]:
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @server.prompt(description="A prompt embedding a resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:
        return [
            UserMessage(_embedded(resourceUri, "Embedded resource content for testing.")),
            UserMessage("Please process the embedded resource above."),
        ]

    @server.prompt(description="A prompt with an image")
    def test_prompt_with_image() -> list[Message]:
        return [
            UserMessage(ImageContent(type="image", data=PNG, mime_type="image/png")),
            UserMessage("Please analyze the image above."),
        ]

    @server.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Any:
        from mcp.types import Completion

        values = [v for v in ("paris", "park", "party") if v.startswith(argument.value or "")]
        return Completion(values=values, total=len(values), has_more=False)

    _input_required_tools(server)
    # Logging and resource subscriptions (2025 revisions): plain acknowledgements.
    low = server._lowlevel_server
    low.add_request_handler("logging/setLevel", types.SetLevelRequestParams, _empty)
    low.add_request_handler("resources/subscribe", types.SubscribeRequestParams, _empty)
    low.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, _empty)
    return server


def _ask_name(message: str = "What is your name?", key: str = "name") -> Any:
    schema = {"type": "object", "properties": {key: {"type": "string"}}, "required": [key]}
    return types.ElicitRequest(
        params=types.ElicitRequestFormParams(message=message, requested_schema=schema)
    )


def _sample(text: str, max_tokens: int) -> Any:
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=text))],
            max_tokens=max_tokens,
        )
    )


def _sample_marker() -> Any:
    return Sample(
        [SamplingMessage(role="user", content=TextContent(type="text", text="Say hi"))],
        max_tokens=10,
    )


def _content(answer: Any) -> Any:
    """An elicitation answer's content (model or dict, as the SDK parsed it)."""
    content = getattr(answer, "content", None)
    return content if content is not None else {}


def _input_required_tools(server: MCPServer) -> None:
    """2026-07-28 multi-round-trip tools (SEP-2322): each returns an InputRequiredResult until
    the client retries with the answers it asked for (request state sealed by the SDK)."""

    @server.tool(description="Asks the user's name, then greets.")
    async def test_input_required_result_elicitation(
        ctx: Context,
    ) -> CallToolResult | types.InputRequiredResult:
        got = ctx.input_responses or {}
        if "user_name" not in got:
            return types.InputRequiredResult(input_requests={"user_name": _ask_name()})
        name = _content(got["user_name"]).get("name", "?")
        return CallToolResult(content=[TextContent(type="text", text=f"Hello, {name}!")])

    @server.tool(description="Asks the client's LLM a question.")
    async def test_input_required_result_sampling(
        ctx: Context,
    ) -> CallToolResult | types.InputRequiredResult:
        got = ctx.input_responses or {}
        if "capital_question" not in got:
            return types.InputRequiredResult(
                input_requests={"capital_question": _sample("What is the capital of France?", 100)}
            )
        text = getattr(getattr(got["capital_question"], "content", None), "text", "?")
        return CallToolResult(content=[TextContent(type="text", text=f"LLM said: {text}")])

    @server.tool(description="Asks the client's roots.")
    async def test_input_required_result_list_roots(
        ctx: Context,
    ) -> CallToolResult | types.InputRequiredResult:
        got = ctx.input_responses or {}
        if "client_roots" not in got:
            return types.InputRequiredResult(
                input_requests={"client_roots": types.ListRootsRequest()}
            )
        roots = [str(r.uri) for r in getattr(got["client_roots"], "roots", [])]
        return CallToolResult(content=[TextContent(type="text", text=f"Roots: {roots}")])

    @server.tool(description="Asks three things at once.")
    async def test_input_required_result_multiple_inputs(
        ctx: Context,
    ) -> CallToolResult | types.InputRequiredResult:
        got = ctx.input_responses or {}
        wanted = {
            "user_name": _ask_name(),
            "greeting": _sample("Generate a greeting", 50),
            "client_roots": types.ListRootsRequest(),
        }
        if not set(wanted) <= set(got) or ctx.request_state != "multiple-inputs":
            return types.InputRequiredResult(input_requests=wanted, request_state="multiple-inputs")
        return CallToolResult(content=[TextContent(type="text", text="All inputs received")])

    @server.tool(description="Asks in two rounds, carrying state.")
    async def test_input_required_result_multi_round(
        ctx: Context,
    ) -> CallToolResult | types.InputRequiredResult:
        got = ctx.input_responses or {}
        state = ctx.request_state
        if state == "round-2" and "step2" in got:
            return CallToolResult(content=[TextContent(type="text", text="Both steps done")])
        if state == "round-1" and "step1" in got:
            ask = _ask_name("Step 2: What is your favorite color?", "color")
            return types.InputRequiredResult(input_requests={"step2": ask}, request_state="round-2")
        return types.InputRequiredResult(
            input_requests={"step1": _ask_name("Step 1: What is your name?")},
            request_state="round-1",
        )

    @server.tool(description="Asks only for what the client can answer.")
    async def test_input_required_result_capabilities(
        ctx: Context,
    ) -> CallToolResult | types.InputRequiredResult:
        got = ctx.input_responses or {}
        caps = ctx.client_capabilities
        wanted: dict[str, Any] = {}
        if caps is not None and caps.sampling is not None:
            wanted["greeting"] = _sample("Generate a greeting", 50)
        if caps is not None and caps.elicitation is not None:
            wanted["user_name"] = _ask_name()
        if not wanted or set(wanted) <= set(got):
            return CallToolResult(content=[TextContent(type="text", text="Done")])
        return types.InputRequiredResult(input_requests=wanted)

    @server.tool(description="Asks for a confirmation, carrying state.")
    async def test_input_required_result_request_state(
        ctx: Context,
    ) -> CallToolResult | types.InputRequiredResult:
        got = ctx.input_responses or {}
        if "confirm" in got and ctx.request_state == "awaiting-confirm":
            return CallToolResult(content=[TextContent(type="text", text="state-ok")])
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        ask = types.ElicitRequest(
            params=types.ElicitRequestFormParams(message="Please confirm", requested_schema=schema)
        )
        return types.InputRequiredResult(
            input_requests={"confirm": ask}, request_state="awaiting-confirm"
        )

    server.add_tool(
        test_input_required_result_request_state.__wrapped__
        if hasattr(test_input_required_result_request_state, "__wrapped__")
        else test_input_required_result_request_state,
        name="test_input_required_result_tampered_state",
        description="The same flow; a tampered state must be refused (the SDK seals it).",
    )

    @server.tool(description="Needs the client's sampling capability.")
    async def test_missing_capability(
        answer: Annotated[types.CreateMessageResult, Resolve(_sample_marker)],
    ) -> str:
        return "sampled"

    @server.tool(description="Adds a tool (list-changed event).")
    async def test_trigger_tool_change(ctx: Context) -> str:
        await ctx.notify_tools_changed()
        return "tools changed"

    @server.tool(description="Adds a prompt (list-changed event).")
    async def test_trigger_prompt_change(ctx: Context) -> str:
        await ctx.notify_prompts_changed()
        return "prompts changed"

    @server.prompt(description="A prompt that needs the user's context first")
    async def test_input_required_result_prompt(ctx: Context) -> Any:
        got = ctx.input_responses or {}
        if "user_context" not in got:
            return types.InputRequiredResult(
                input_requests={"user_context": _ask_name("What context?", "context")}
            )
        text = _content(got["user_context"]).get("context", "")
        return [UserMessage(f"Context: {text}")]


async def _empty(ctx: Any, params: Any) -> types.EmptyResult:
    return types.EmptyResult()


def _schema_tool(**kwargs: Any) -> str:
    return json.dumps(kwargs, sort_keys=True)


def _embedded(uri: str, text: str, mime: str = "text/plain") -> EmbeddedResource:
    return EmbeddedResource(
        type="resource", resource=TextResourceContents(uri=uri, mime_type=mime, text=text)
    )


@dataclass
class RunningServer:
    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _config(**where: Any) -> uvicorn.Config:
    app = build_server().streamable_http_app(streamable_http_path=PATH)
    return uvicorn.Config(app, log_level="warning", lifespan="on", **where)


def start_server() -> RunningServer:
    """Start on 127.0.0.1, a free port, in a daemon thread; return once it accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config())
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):  # bounded: 10 s
        if server.started:
            break
        time.sleep(0.02)
    else:
        server.should_exit = True
        raise RuntimeError("conformance server did not start")
    return RunningServer(f"http://127.0.0.1:{port}{PATH}", port, server, thread)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.Server(_config(host="127.0.0.1", port=args.port)).run()


if __name__ == "__main__":
    main()
