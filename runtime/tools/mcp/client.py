"""A connection to one MCP server, for a synchronous loop.

The official SDK (`mcp`) is asynchronous; the governed loop is not. Each connection owns an
event loop in a thread of its own (an anyio blocking portal): one task there holds the
transport and the client session open for the life of the run, and the loop's thread makes
each request through the portal and waits for it — with a deadline, always. A server that
will not start, stops answering or dies becomes an :class:`McpServerError` that names the
server and carries the tail of what it wrote to stderr; nothing here can hang the run.
Closing stops the server (the SDK terminates a stdio server's process tree) within a bound.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import IO, Any

from govrun.runtime.errors import GovrunError

logging.getLogger("mcp").addHandler(logging.NullHandler())  # the SDK's noise is not ours
logging.getLogger("httpx2").addHandler(logging.NullHandler())

STDERR_TAIL_BYTES = 2000
CLOSE_TIMEOUT_S = 10.0
INSTALL_HINT = "MCP servers need the MCP SDK: pip install 'govrun[mcp]'"


class McpServerError(GovrunError):
    """A server failed to start, to answer in time, or stayed up no longer: the message
    names the server and what happened, with the tail of its stderr."""


class McpUnavailable(GovrunError):
    """The `mcp` package is not installed."""


def sdk() -> Any:
    """The `mcp` package, or :class:`McpUnavailable` saying how to install it."""
    try:
        import mcp
        import mcp.client.stdio
        import mcp.client.streamable_http
    except ImportError as exc:
        raise McpUnavailable(f"{INSTALL_HINT} ({exc})") from None
    return mcp


class McpConnection:
    """One running server: start it, list its tools, call them, close it."""

    def __init__(
        self,
        name: str,
        *,
        command: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env or {})
        self.cwd = cwd
        self.url = url
        self.headers = dict(headers or {})
        self.server_info: dict[str, Any] = {}
        self.protocol_version: str | None = None
        self.tools_changed = threading.Event()
        """Set when the server says its tool list changed (re-list before trusting it)."""
        self._stderr: IO[bytes] | None = None
        self._portal: Any = None
        self._portal_cm: Any = None
        self._session: Any = None
        self._closed: Any = None
        self._task: Any = None
        self._dead: str | None = None

    @property
    def where(self) -> str:
        return f"`{' '.join(self.command)}`" if self.command else str(self.url)

    # --- life cycle ---------------------------------------------------------------------

    def start(self, timeout_s: float) -> None:
        """Start (or reach) the server and initialize the session, within ``timeout_s``."""
        mcp = sdk()
        from anyio.from_thread import start_blocking_portal

        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the server's, until close
        self._portal_cm = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        try:
            self._task, _ = self._portal.start_task(self._hold, mcp, timeout_s)
        except BaseException as exc:
            error = self.failure("did not start", exc)  # while its stderr is still there
            self._teardown()
            raise error from None

    async def _hold(self, mcp: Any, timeout_s: float, *, task_status: Any) -> None:
        """The task that owns the transport and session until :meth:`close`."""
        import anyio

        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(self._transport(mcp))
            session = await stack.enter_async_context(
                mcp.ClientSession(read, write, message_handler=self._on_message)
            )
            with anyio.fail_after(timeout_s):  # its scope closes before the stack's do
                init = await session.initialize()
            info = init.server_info
            self.server_info = {"name": info.name, "version": info.version}
            self.protocol_version = str(init.protocol_version)
            self._session = session
            self._closed = anyio.Event()
            task_status.started()
            await self._closed.wait()

    def _transport(self, mcp: Any) -> Any:
        if self.command is not None:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            params = StdioServerParameters(
                command=self.command[0],
                args=self.command[1:],
                env=self.env or None,
                cwd=str(self.cwd) if self.cwd else None,
            )
            return stdio_client(params, errlog=self._stderr)  # type: ignore[arg-type]
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        client = create_mcp_http_client(headers=self.headers or None)
        return streamable_http_client(str(self.url), http_client=client)

    async def _on_message(self, message: Any) -> None:
        from mcp import types

        if isinstance(message, types.ToolListChangedNotification):
            self.tools_changed.set()

    def close(self) -> None:
        """Stop the server (or end the HTTP session); bounded, never raises."""
        if self._portal is None:
            return
        try:
            if self._closed is not None:
                self._portal.call(self._closed.set)
            if self._task is not None:
                self._task.result(timeout=CLOSE_TIMEOUT_S)
        except BaseException:
            pass
        self._teardown()

    def _teardown(self) -> None:
        portal_cm, self._portal, self._portal_cm = self._portal_cm, None, None
        if portal_cm is not None:
            try:
                if self._task is not None and not self._task.done():
                    self._task.cancel()
                portal_cm.__exit__(None, None, None)
            except BaseException:
                pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    # --- requests -----------------------------------------------------------------------

    def list_tools(self, timeout_s: float) -> list[Any]:
        """Every tool the server offers (following pagination), as SDK ``Tool`` objects."""

        async def listing() -> list[Any]:
            from mcp import types

            tools: list[Any] = []
            cursor: str | None = None
            while True:
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await self._session.list_tools(params=params)
                tools += page.tools
                cursor = page.next_cursor
                if not cursor:
                    return tools

        self.tools_changed.clear()
        return self._request("listing its tools", listing, timeout_s)

    def call_tool(self, name: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        """One ``tools/call``: the SDK's ``CallToolResult``. Raises :class:`TimeoutError`
        when the server does not answer within ``timeout_s`` (the request is cancelled), or
        :class:`McpServerError` when it cannot answer at all."""

        async def call() -> Any:
            return await self._session.call_tool(name, arguments)

        return self._request(f"calling {name}", call, timeout_s)

    def _request(self, doing: str, request: Any, timeout_s: float) -> Any:
        if self._dead is not None:
            raise McpServerError(self._dead)
        if self._portal is None or self._session is None:
            raise McpServerError(f"MCP server {self.name!r} is not running")

        async def bounded() -> Any:
            import anyio

            with anyio.fail_after(timeout_s):
                return await request()

        try:
            return self._portal.call(bounded)
        except TimeoutError:
            if self._task is not None and self._task.done():
                raise self._died(doing, None) from None
            raise
        except Exception as exc:
            if _is_tool_level(exc):
                raise
            raise self._died(doing, exc) from None

    def _died(self, doing: str, exc: BaseException | None) -> McpServerError:
        error = self.failure(f"stopped answering while {doing}", exc)
        self._dead = error.message
        return error

    def failure(self, what: str, exc: BaseException | None = None) -> McpServerError:
        """An error naming this server and ``what`` happened, with its stderr tail."""
        why = _describe(exc)
        tail = self.stderr_tail()
        text = f"MCP server {self.name!r} ({self.where}) {what}"
        text += f": {why}" if why else ""
        text += f"; its stderr ends: {tail}" if tail else ""
        return McpServerError(text)

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (stdio servers), for error messages."""
        if self._stderr is None:
            return ""
        try:
            self._stderr.flush()
            size = os.fstat(self._stderr.fileno()).st_size
            self._stderr.seek(max(0, size - STDERR_TAIL_BYTES))
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return " | ".join(line.strip() for line in text.splitlines()[-8:] if line.strip())


def _is_tool_level(exc: BaseException) -> bool:
    """A JSON-RPC error the server answered with (unknown tool, bad params): the server is
    alive, the request failed."""
    try:
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED
    except ImportError:  # pragma: no cover - sdk() ran first
        return False
    return isinstance(exc, MCPError) and exc.code != CONNECTION_CLOSED


def _describe(exc: BaseException | None) -> str:
    """One line for an exception, unwrapping the task groups the SDK raises through."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if exc is None:
        return ""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, FileNotFoundError):
        return f"no such program ({exc.filename or exc})"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
