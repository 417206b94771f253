"""MCP servers as governed tool sources: the connection (client), the tool, the pins, and
the sources a run opens (see DESIGN section 6)."""
