"""A run's MCP servers: started, listed, checked against their pins, turned into tools.

:func:`open_sources` is the live side: it starts every server a `tools:` entry names
(only those), lists its tools, resolves each entry (a `SERVER/*` glob becomes one tool per
matching server tool), compares the listing with the lock file, and says all of it as one
``mcp_server`` event payload per server — the record replay answers from. A server that
cannot start or does not offer a named tool ends the run with that payload's ``error``.

:func:`recorded_sources` is the replay side: the same tools and payloads, from the record,
with no server started.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from govrun.runtime.errors import GovrunError
from govrun.runtime.manifest.fields import TOOL_NAME_PATTERN
from govrun.runtime.manifest.mcp import McpServerSpec, is_glob, split_ref
from govrun.runtime.manifest.schema import Manifest, ToolSpec
from govrun.runtime.tools.mcp.client import McpConnection, McpServerError
from govrun.runtime.tools.mcp.pins import (
    Pins,
    compare,
    definition_hash,
    definition_of,
    describe,
    read_lock,
)
from govrun.runtime.tools.mcp.tool import McpTool

_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)


class McpStartError(GovrunError):
    """A `tools:` entry names something its server does not offer (or cannot be exposed)."""

    def __init__(self, message: str, *, entry: int) -> None:
        super().__init__(message)
        self.entry = entry
        """The index of the `tools:` entry at fault."""


@dataclass
class McpSources:
    """The MCP side of one run."""

    manifest: Manifest
    """The manifest with every `SERVER/*` entry expanded into the tools it matched (and the
    risk a trusted server's annotations give set on each tool): what policy, budgets and
    approvals see. Without MCP tools, the manifest itself."""
    tools: dict[str, McpTool] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    """One ``mcp_server`` payload per server, in manifest order."""
    connections: list[McpConnection] = field(default_factory=list)
    unpinned: list[str] = field(default_factory=list)
    """Servers with no pins in the lock (a run warns once)."""
    error_at: tuple[str | int, ...] = ()
    """The manifest field at fault when a server cannot be used (for `govrun validate`)."""

    @property
    def error(self) -> str | None:
        return next((e["error"] for e in self.events if e.get("error")), None)

    def _failed(self) -> McpSources:
        """A server cannot be used: the run ends at its event, with no MCP tools."""
        tools = [t for t in self.manifest.tools if not t.mcp]
        self.manifest = self.manifest.model_copy(update={"tools": tools})
        self.tools = {}
        self.close()
        return self

    def close(self) -> None:
        for connection in self.connections:
            connection.close()


def servers_used(manifest: Manifest) -> list[str]:
    """Servers a `tools:` entry names, in the order `mcp_servers:` declares them."""
    named = {split_ref(t.mcp)[0] for t in manifest.tools if t.mcp}
    return [name for name in manifest.mcp_servers if name in named]


def open_sources(
    manifest: Manifest, *, lock_file: Path | None, env: Mapping[str, str] | None = None
) -> McpSources:
    """Start and list every server the manifest's tools name. Never raises for a server's
    failure: it becomes the payload's ``error`` (and every server is closed)."""
    sources = McpSources(manifest)
    names = servers_used(manifest)
    if not names:
        return sources
    pins: Pins | None = read_lock(lock_file) if lock_file is not None else None
    listings: dict[str, dict[str, dict[str, Any]]] = {}
    specs = [manifest.mcp_servers[name] for name in names]
    for name, spec in zip(names, specs, strict=True):
        sources.connections.append(_connection(name, spec, manifest))
    # All start at once (a slow server's start is not added to the next one's); what they
    # listed is then taken in the manifest's order, so the record is the same either way.
    with ThreadPoolExecutor(len(names), thread_name_prefix="mcp-start") as pool:
        started = list(pool.map(_start, sources.connections, specs))
    for name, spec, connection, (listed, error) in zip(
        names, specs, sources.connections, started, strict=True
    ):
        payload: dict[str, Any] = {"server": name, "transport": spec.transport}
        sources.events.append(payload)
        if error is not None:
            payload["error"] = error
            sources.error_at = ("mcp_servers", name)
            return sources._failed()
        payload["server_info"] = connection.server_info
        listings[name] = {t.name: definition_of(t) for t in listed}
    try:
        _resolve(sources, listings, pins, lock_file)
    except McpStartError as exc:
        entry = manifest.tools[exc.entry]
        server = split_ref(entry.mcp or "")[0]
        at = next(e for e in sources.events if e["server"] == server)
        at["error"] = exc.message
        sources.error_at = ("tools", exc.entry, "mcp")
        return sources._failed()
    return sources


def _start(connection: McpConnection, spec: McpServerSpec) -> tuple[list[Any], str | None]:
    """Start one server and list its tools: (the tools, None) or ([], why not)."""
    try:
        connection.start(spec.startup_timeout_s)
        return connection.list_tools(spec.startup_timeout_s), None
    except TimeoutError:
        return [], connection.failure("did not list its tools in time").message
    except McpServerError as exc:
        return [], exc.message


def recorded_sources(manifest: Manifest, events: Sequence[Mapping[str, Any]]) -> McpSources:
    """The MCP side of a recorded run: the payloads it recorded, and tools built from the
    definitions they hold (for the manifest given: a what-if manifest may expose the
    recorded tools differently), with no server started."""
    sources = McpSources(manifest, events=[dict(e) for e in events])
    if sources.error is not None:
        return sources._failed()  # the recorded run ended there; so does its replay
    listings = {
        str(e["server"]): {str(t["tool"]): dict(t["definition"]) for t in e.get("tools", ())}
        for e in events
    }
    changed = {
        (str(e["server"]), str(t["tool"])): str(t["changed"])
        for e in events
        for t in e.get("tools", ())
        if t.get("changed")
    }
    missing = [s for s in servers_used(manifest) if s not in listings]
    if missing:
        raise GovrunError(
            f"the record holds no listing of MCP server {missing[0]!r} (the recorded run did "
            "not use it); replay with --live-tools to start it"
        )
    try:
        _build(sources, _exposed(manifest, listings), listings, changed, {})
    except McpStartError as exc:
        raise GovrunError(
            f"{exc.message} — in the record, which holds only the tools the recorded run "
            "exposed; replay with --live-tools to list the server's tools"
        ) from None
    return sources


def _connection(name: str, spec: McpServerSpec, manifest: Manifest) -> McpConnection:
    if spec.command is not None:
        cwd = manifest.resolve_path(spec.cwd) if spec.cwd else manifest.base_dir
        return McpConnection(name, command=list(spec.command), env=spec.env, cwd=cwd)
    return McpConnection(name, url=spec.url, headers=spec.headers)


def _resolve(
    sources: McpSources,
    listings: Mapping[str, Mapping[str, Mapping[str, Any]]],
    pins: Pins | None,
    lock_file: Path | None,
) -> None:
    """Fill each payload from its listing: the exposed tools (with their pins' verdicts),
    what the server offers, the lock's status; then build the tools."""
    exposed = _exposed(sources.manifest, listings)
    changed: dict[tuple[str, str], str] = {}
    for payload in sources.events:
        name = payload["server"]
        listing = listings[name]
        pinned = (pins or {}).get(name)
        changes = compare(listing, pinned) if pinned is not None else []
        changed.update(
            {(name, c["tool"]): describe(c) for c in changes if c["change"] != "removed"}
        )
        payload["offered"] = {tool: definition_hash(d) for tool, d in sorted(listing.items())}
        payload["tools"] = [
            {
                "name": manifest_name,
                "tool": tool,
                "sha256": definition_hash(listing[tool]),
                "definition": listing[tool],
                **({"changed": changed[(name, tool)]} if (name, tool) in changed else {}),
            }
            for manifest_name, (server, tool) in exposed.items()
            if server == name
        ]
        if pinned is None:
            payload["lock"] = "unpinned"
            sources.unpinned.append(name)
        else:
            payload["lock"] = "changed" if changes else "pinned"
            payload["lock_file"] = lock_file.name if lock_file is not None else None
            if changes:
                payload["changes"] = changes
    connections = {c.name: c for c in sources.connections}
    _build(sources, exposed, listings, changed, connections)


def _exposed(m: Manifest, listings: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Manifest tool name -> (server, tool) for every MCP entry, globs expanded; raises
    :class:`McpStartError` for a tool not offered or a name that cannot be used."""
    exposed: dict[str, tuple[str, str]] = {}
    taken = {t.name for t in m.tools if not t.mcp}
    for index, spec in enumerate(m.tools):
        if spec.mcp is None:
            continue
        server, wanted = split_ref(spec.mcp)
        offered = list(listings[server])
        if not is_glob(wanted):
            if wanted not in offered:
                raise McpStartError(
                    f"tool {spec.name!r}: MCP server {server!r} offers no tool {wanted!r} "
                    f"(it offers: {', '.join(offered) or 'none'})",
                    entry=index,
                )
            names = [(spec.name, wanted)]
        else:
            names = [(spec.name.replace("*", t), t) for t in offered if fnmatchcase(t, wanted)]
        for name, tool in names:
            if not _TOOL_NAME.match(name):
                raise McpStartError(
                    f"tool {spec.name!r}: {server}/{tool} would be called {name!r}, which is "
                    "not a tool name a model can call (letters, digits, '_' or '-', at most "
                    "64 characters); expose it under its own `name:`",
                    entry=index,
                )
            if name in taken or name in exposed:
                raise McpStartError(
                    f"tool {spec.name!r}: {server}/{tool} would be called {name!r}, and "
                    "another tool already has that name",
                    entry=index,
                )
            exposed[name] = (server, tool)
    return exposed


def _build(
    sources: McpSources,
    exposed: Mapping[str, tuple[str, str]],
    listings: Mapping[str, Mapping[str, Mapping[str, Any]]],
    changed: Mapping[tuple[str, str], str],
    connections: Mapping[str, McpConnection],
) -> None:
    """The tools, and the manifest with each MCP entry replaced by the tools it exposes."""
    m = sources.manifest
    specs: list[ToolSpec] = []
    for index, spec in enumerate(m.tools):
        if spec.mcp is None:
            specs.append(spec)
            continue
        import jsonschema  # only agents with MCP tools need it (~30 ms to import)

        server_spec = m.mcp_servers[split_ref(spec.mcp)[0]]
        for name, (server, tool) in exposed.items():
            if not _entry_names(spec, name, server, tool):
                continue
            definition = listings[server][tool]
            hinted = _hinted_risk(definition) if server_spec.trusted else None
            specs.append(
                spec.model_copy(
                    update={"name": name, "mcp": f"{server}/{tool}", "risk": spec.risk or hinted}
                )
            )
            try:
                built = McpTool(
                    name=name,
                    server=server,
                    tool=tool,
                    definition=definition,
                    connection=connections.get(server),
                    description=spec.description,
                    timeout_s=spec.timeout_s,
                    max_output_bytes=spec.max_output_bytes,
                )
            except jsonschema.SchemaError as exc:
                raise McpStartError(
                    f"tool {name!r}: MCP server {server!r} lists {tool} with an input schema "
                    f"that is not valid JSON Schema: {exc.message}",
                    entry=index,
                ) from None
            built.pin_change = changed.get((server, tool))
            built.on_change = server_spec.on_change
            sources.tools[name] = built
    sources.manifest = m.model_copy(update={"tools": specs})


def _entry_names(spec: ToolSpec, name: str, server: str, tool: str) -> bool:
    """Whether the `tools:` entry ``spec`` is the one that exposed ``server/tool`` as
    ``name``."""
    at, wanted = split_ref(spec.mcp or "")
    if at != server:
        return False
    if spec.is_pattern:
        return fnmatchcase(tool, wanted) and spec.name.replace("*", tool) == name
    return spec.name == name


def _hinted_risk(definition: Mapping[str, Any]) -> str | None:
    """A trusted server's annotations as a risk: read-only is low, destructive high,
    anything else (additive, or unsaid) medium."""
    hints = definition.get("annotations") or {}
    if hints.get("readOnlyHint") is True:
        return "low"
    if hints.get("destructiveHint", True) is True:
        return "high" if "destructiveHint" in hints else None
    return "medium"


def unpinned_warning(servers: Iterable[str]) -> str:
    names = ", ".join(repr(s) for s in servers)
    return (
        f"MCP server{'s' if ',' in names else ''} {names}: tools are not pinned, so a changed "
        "tool description or schema would not be noticed; pin them with `govrun mcp pin "
        "AGENT.yaml`"
    )


def list_servers(manifest: Manifest, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Start each named server, list every tool it offers, stop it: server -> tool ->
    definition (for `govrun mcp pin`). Raises :class:`McpServerError` for one that fails."""
    listings: dict[str, dict[str, Any]] = {}
    for name in names:
        spec = manifest.mcp_servers[name]
        connection = _connection(name, spec, manifest)
        try:
            connection.start(spec.startup_timeout_s)
            try:
                listed = connection.list_tools(spec.startup_timeout_s)
            except TimeoutError:
                raise connection.failure("did not list its tools in time") from None
            listings[name] = {t.name: definition_of(t) for t in listed}
        finally:
            connection.close()
    return listings


def exposed_names(
    manifest: Manifest, listings: Mapping[str, Mapping[str, Any]]
) -> dict[tuple[str, str], list[str]]:
    """(server, tool) -> the manifest names it is exposed under (for `govrun mcp list`)."""
    found: dict[tuple[str, str], list[str]] = {}
    for spec in manifest.tools:
        if spec.mcp is None:
            continue
        server, wanted = split_ref(spec.mcp)
        for tool in listings.get(server, {}):
            if fnmatchcase(tool, wanted):
                name = spec.name.replace("*", tool) if spec.is_pattern else spec.name
                found.setdefault((server, tool), []).append(name)
    return found
