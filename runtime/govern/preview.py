"""What an ``ask`` call would change, shown to the person asked to approve it.

``preview_call`` turns an ``fs.write`` into a unified diff of the file's current content
against the new content, and an ``fs.delete`` into the diff of the file to nothing. Other
tools have no preview.

The current content is read only through the tool's own :class:`Confinement`, at the
canonical path the call would act on, by the same component-by-component ``O_NOFOLLOW``
walk the tool itself uses, so a preview can never be made to read a file the tool could not touch. A
path outside the roots, a symlink swapped in, a directory or a device has no preview; it
is never opened. No terminal code here: the CLI decides how a preview looks.
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from govrun.runtime.tools.fs import Confinement, Located, _open_regular, _read_up_to

if TYPE_CHECKING:
    from govrun.runtime.govern.toolbox import PreparedCall

DEFAULT_MAX_BYTES = 64_000


def preview_call(call: PreparedCall, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str | None:
    """The change ``call`` would make, or ``None`` when there is nothing to show.

    A write or delete of text up to ``max_bytes`` on both sides is a unified diff
    (``a/PATH`` → ``b/PATH``, a new file from ``/dev/null``, a deleted one to it); binary
    or larger content is a one-line summary such as ``binary file, 12,345 bytes → 200
    bytes``. Never raises.
    """
    try:
        uses = call.spec.uses
        if uses not in ("fs.write", "fs.delete"):
            return None
        scope = getattr(call.tool, "scope", None)
        if not isinstance(scope, Confinement) or call.canonical is None:
            return None
        arguments = call.canonical.arguments
        if uses == "fs.write":
            return _write_preview(scope, arguments, max_bytes)
        return _delete_preview(scope, arguments, max_bytes)
    except Exception:  # advisory only: a preview that fails must never fail the approval
        return None


def _write_preview(scope: Confinement, arguments: dict[str, Any], max_bytes: int) -> str:
    loc = scope.at(arguments["path"], follow_final=True)  # the canonical call FsWrite runs
    before = _read_current(scope, loc, max_bytes)
    after = str(arguments["content"]).encode("utf-8")
    return _describe(loc.display, before, after, max_bytes)


def _delete_preview(scope: Confinement, arguments: dict[str, Any], max_bytes: int) -> str:
    loc = scope.at(arguments["path"], follow_final=False)  # the canonical call FsDelete runs
    link = _symlink_target(scope, loc)
    if link is not None:
        return f"deletes the symlink {loc.display} → {link} (its target is kept)"
    before = _read_current(scope, loc, max_bytes)
    if before is None:
        return f"{loc.display} does not exist; nothing would be deleted"
    return _describe(loc.display, before, None, max_bytes)


@dataclass(frozen=True)
class _Content:
    """The start of a file (at most ``max_bytes + 1`` bytes) and its full size."""

    head: bytes
    size: int


def _read_current(scope: Confinement, loc: Located, max_bytes: int) -> _Content | None:
    """The regular file at ``loc`` reached without following symlinks; None if absent."""
    try:
        with scope.open_dir(loc.root, loc.parent) as dir_fd:
            fd, st = _open_regular(dir_fd, loc.name)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        head = _read_up_to(f.fileno(), max_bytes + 1)
    return _Content(head, max(st.st_size, len(head)))


def _symlink_target(scope: Confinement, loc: Located) -> str | None:
    """Where the symlink at ``loc`` points, when the entry there is one."""
    try:
        with scope.open_dir(loc.root, loc.parent) as dir_fd:
            st = os.stat(loc.name, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                return None
            return os.readlink(loc.name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def _describe(path: str, before: _Content | None, after: bytes | None, max_bytes: int) -> str:
    """A diff from ``before`` (None: no file) to ``after`` (None: deleted), or a summary."""
    old_size = None if before is None else before.size
    new_size = None if after is None else len(after)
    if max(old_size or 0, new_size or 0) > max_bytes:
        return _summary("large", old_size, new_size) + f" (no diff over {max_bytes:,} bytes)"
    old_text = "" if before is None else _text(before.head)
    new_text = "" if after is None else _text(after)
    if old_text is None or new_text is None:
        return _summary("binary", old_size, new_size)
    if before is not None and after is not None and old_text == new_text:
        return f"no change: {path} already has this content"
    if not old_text and not new_text:
        return f"{'creates' if before is None else 'deletes'} the empty file {path}"
    lines = difflib.unified_diff(
        _lines(old_text),
        _lines(new_text),
        fromfile="/dev/null" if before is None else f"a/{path}",
        tofile="/dev/null" if after is None else f"b/{path}",
        n=3,
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def _summary(kind: str, old_size: int | None, new_size: int | None) -> str:
    if old_size is None:
        return f"new {kind} file, {new_size:,} bytes"
    if new_size is None:
        return f"{kind} file, {old_size:,} bytes → deleted"
    return f"{kind} file, {old_size:,} bytes → {new_size:,} bytes"


def _text(data: bytes) -> str | None:
    """``data`` as text, or None when it is binary (a NUL byte, or not UTF-8)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _lines(text: str) -> list[str]:
    """Split on ``\\n`` only, keeping it: ``str.splitlines`` would also split on form feeds
    and Unicode separators, making diff lines that are not the file's lines."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines
