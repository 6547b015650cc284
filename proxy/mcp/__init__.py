"""MCP (JSON-RPC 2.0 over Streamable HTTP): pure parsing, SSE framing and tool policy."""
