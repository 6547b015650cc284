"""Tool integrity for MCP routes: pinned tool definitions and argument validation."""
