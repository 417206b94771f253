"""``govrun mcp pin`` / ``govrun mcp list``: review what a manifest's MCP servers offer, and
pin it, so a run notices when a server changes a tool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from govrun.cli.console import handle_errors, out
from govrun.runtime.errors import GovrunError

mcp_app = typer.Typer(
    help="MCP servers as tool sources: list their tools, pin their definitions.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ManifestArg = Annotated[
    Path, typer.Argument(help="The agent manifest (YAML).", metavar="AGENT.yaml")
]
ServerOption = Annotated[
    list[str] | None,
    typer.Option(
        "--server", "-s", help="Only this server (repeat for several); default: every one."
    ),
]


@mcp_app.command()
@handle_errors
def pin(manifest: ManifestArg, server: ServerOption = None) -> None:
    """Start the manifest's MCP servers, list every tool each offers, and write the SHA-256
    of each tool's definition (name, description, input schema, annotations) to
    AGENT.mcp.lock beside the manifest. A later run denies (or, with `on_change: ask`,
    asks about) any exposed tool whose definition no longer matches. Review what changed
    (shown here) before pinning again. Exit 0 written, 2 a server failed."""
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.tools.mcp.pins import (
        compare,
        describe,
        lock_path,
        pins_of,
        read_lock,
        write_lock,
    )
    from govrun.runtime.tools.mcp.sources import list_servers

    m = load_manifest(manifest)
    names = _servers(m, server)
    lock = lock_path(manifest)
    before = read_lock(lock) or {}
    listings = list_servers(m, names)
    pins = dict(before)
    table = Table("server", "tools", "since the last pin", box=None, pad_edge=False)
    for name, listing in listings.items():
        pins[name] = pins_of(listing)
        if name not in before:
            since = "first pin"
        else:
            changes = compare(listing, before[name])
            since = "\n".join(escape(describe(c)) for c in changes) or "unchanged"
        table.add_row(escape(name), str(len(listing)), since)
    write_lock(lock, pins)
    out.print(table)
    out.print(f"[green]✓[/] pinned {len(listings)} server(s) in {escape(str(lock))}")


@mcp_app.command(name="list")
@handle_errors
def list_tools(manifest: ManifestArg, server: ServerOption = None) -> None:
    """Start the manifest's MCP servers and show every tool each offers: the name the model
    sees (if a `tools:` entry exposes it), its description, and how it compares with its
    pin. Exit 0, 2 when a server fails."""
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.tools.mcp.pins import compare, lock_path, read_lock
    from govrun.runtime.tools.mcp.sources import exposed_names, list_servers

    m = load_manifest(manifest)
    names = _servers(m, server)
    pinned = read_lock(lock_path(manifest)) or {}
    listings = list_servers(m, names)
    exposed = exposed_names(m, listings)
    table = Table("server", "tool", "exposed as", "pin", "description", box=None)
    for name, listing in listings.items():
        changes = {c["tool"]: c["change"] for c in compare(listing, pinned.get(name, {}))}
        for tool, definition in listing.items():
            state = "unpinned" if name not in pinned else changes.get(tool, "pinned")
            table.add_row(
                escape(name),
                escape(tool),
                escape(", ".join(exposed.get((name, tool), [])) or "-"),
                state,
                escape(str(definition.get("description") or "").split("\n")[0][:80]),
            )
    out.print(table)


def _servers(m: object, chosen: list[str] | None) -> list[str]:
    declared = list(getattr(m, "mcp_servers", {}))
    if not declared:
        raise GovrunError("the manifest declares no `mcp_servers:`")
    unknown = [s for s in chosen or [] if s not in declared]
    if unknown:
        raise GovrunError(
            f"no MCP server {unknown[0]!r} in the manifest; it declares: {', '.join(declared)}"
        )
    return list(chosen) if chosen else declared
