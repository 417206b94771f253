"""The MCP server bench_mcp talks to: one tool, ``add(a, b)``, over stdio (the SDK's
MCPServer), so what is measured is the protocol round trip and govrun's governance."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


if __name__ == "__main__":
    server.run("stdio")
