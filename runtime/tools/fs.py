"""fs.read / fs.write / fs.list / fs.delete, confined to declared root directories.

Two layers, because a path check alone loses a race against a symlink swapped in after it:

1. ``Confinement.locate`` (pure, used by ``check()``): reject suspicious path text, resolve
   the path canonically (``..``, symlinks, absolute paths) and require the result to be
   inside a root, comparing resolved ``Path`` objects, never string prefixes.
2. The operation itself opens the root directory and walks every component of the
   resolved relative path with ``O_NOFOLLOW`` at ``dir_fd``; a symlink that appears after
   the check makes the walk fail with ``ELOOP``/``ENOTDIR``, which is a denial.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import os
import secrets
import stat
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import Field

from govrun.runtime.tools.base import (
    UNDO_MAX_BYTES,
    ArgsModel,
    BaseTool,
    Canonical,
    FileUndo,
    Irreversible,
    Kinds,
    ScopeViolation,
    ToolConfigError,
    ToolResult,
    Undo,
    describe_roots,
    portable,
)

_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 16
MAX_LIST_ENTRIES = 1000

_CONFUSABLES = frozenset(
    "\u2024\u2025\u2026\ufe52\uff0e\u3002\uff61\u0701\u0702\ua4f8"  # dot look-alikes
    "\u2215\u2044\u29f8\u2571\u29f6\uff0f\u30fb\u2afd\u1735"  # slash look-alikes
    "\u2216\u29f5\u29f9\ufe68\uff3c\u2572"  # backslash look-alikes
)
"""Characters that read as ``.``, ``/`` or ``\\`` to a person approving the call but are
ordinary filename bytes to the kernel. Many survive NFKC, so they are listed explicitly."""


def validate_path_text(path: str) -> None:
    """Reject path text whose meaning a reviewer could misread. Fails closed."""
    if not path:
        raise ScopeViolation("path is empty", failure_class="invalid_arguments")
    for ch in path:
        if ch in _CONFUSABLES:
            raise ScopeViolation(f"path {path!r} contains look-alike character U+{ord(ch):04X}")
        if unicodedata.category(ch)[0] in "CZ" and ch != " ":
            raise ScopeViolation(
                f"path {path!r} contains control or invisible character U+{ord(ch):04X}"
            )
    if unicodedata.normalize("NFKC", path) != path:
        raise ScopeViolation(f"path {path!r} is not NFKC-normalized (look-alike characters)")


@dataclass(frozen=True)
class Located:
    """A requested path after resolution: which root, and the canonical components under it.

    ``rel`` never contains ``.``/``..`` or empty parts; ``()`` is the root itself.
    """

    requested: str
    root: Path
    rel: tuple[str, ...]
    canonical: str = ""
    """The path relative to the tool's first root (``../other/x`` for a file in another
    root): the canonical form policy judges and the trace records."""

    @property
    def display(self) -> str:
        """The path relative to its root, as shown to the model and stored as evidence."""
        return "/".join(self.rel) or "."

    @property
    def parent(self) -> tuple[str, ...]:
        return self.rel[:-1]

    @property
    def name(self) -> str:
        if not self.rel:
            raise IsADirectoryError(f"{self.requested!r} is the root directory")
        return self.rel[-1]


class Confinement:
    """A set of root directories and the only ways fs tools may reach inside them."""

    def __init__(self, roots: list[Path]) -> None:
        if not roots:
            raise ToolConfigError("fs tools need at least one root in scope.roots")
        self.roots = [Path(r).resolve(strict=False) for r in roots]
        self._folds: dict[Path, bool] = {}

    def locate(self, path: str, *, follow_final: bool = True) -> Located:
        """Resolve ``path`` (relative paths against the first root) and require it inside a
        root. With ``follow_final=False`` the last component is kept literally, so deleting a
        symlink removes the link, not its target."""
        validate_path_text(path)
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        if follow_final:
            resolved = _resolve(candidate, path)
        else:
            if candidate.name in ("", "..") or path.endswith(("/", "/.")) or path == ".":
                raise ScopeViolation(f"path {path!r} does not name a file")
            resolved = _resolve(candidate.parent, path) / candidate.name
        located = self._inside(path, resolved)
        if not follow_final and not located.rel:
            raise ScopeViolation(f"path {path!r} is a root directory, not a file inside it")
        return located

    def _inside(self, path: str, resolved: Path) -> Located:
        for root in self.roots:
            if resolved.is_relative_to(root):
                rel = resolved.relative_to(root).parts
                if any(p in ("", ".", "..") for p in rel):  # cannot happen after resolve()
                    raise ScopeViolation(f"path {path!r} did not resolve canonically")
                if self._folds_case(root):
                    rel = _names_on_disk(root, rel)
                return Located(path, root, rel, self._relative(root, rel))
        raise ScopeViolation(
            f"path {path!r} resolves to {portable(resolved, self.roots[0])}, outside "
            + describe_roots(self.roots)
        )

    def _relative(self, root: Path, rel: tuple[str, ...]) -> str:
        """``rel`` under ``root`` as a path from the first root: the canonical text."""
        if root == self.roots[0]:
            return "/".join(rel) or "."
        return os.path.relpath(root.joinpath(*rel), self.roots[0])

    def at(self, canonical: str, *, follow_final: bool = True) -> Located:
        """The location a canonical path names, rebuilt without resolving anything: a
        recorded call runs where it was judged to run, and the walk that opens it refuses
        any symlink met on the way. Text that is not canonical (``.``/``..`` parts where
        they do not belong, doubled or trailing separators) is refused."""
        validate_path_text(canonical)
        if canonical.startswith("/") or canonical != os.path.normpath(canonical):
            raise ScopeViolation(f"path {canonical!r} is not in canonical form")
        if canonical == ".":
            located = Located(canonical, self.roots[0], (), canonical)
        else:
            located = self._inside(canonical, Path(os.path.normpath(self.roots[0] / canonical)))
            if located.canonical != canonical:
                raise ScopeViolation(f"path {canonical!r} is not in canonical form")
        if not follow_final and not located.rel:
            raise ScopeViolation(f"path {canonical!r} is a root directory, not a file inside it")
        return located

    def _folds_case(self, root: Path) -> bool:
        """Whether the filesystem under ``root`` finds names case-insensitively (macOS and
        Windows defaults, casefolded ext4): then a path's canonical form spells each
        existing component as it is on disk, since ``.ENV`` opens ``.env`` there."""
        folds = self._folds.get(root)
        if folds is None:
            folds = self._folds[root] = _case_insensitive(root)
        return folds

    @contextlib.contextmanager
    def open_dir(
        self,
        root: Path,
        parts: tuple[str, ...],
        *,
        create: bool = False,
        created: list[str] | None = None,
    ) -> Iterator[int]:
        """Yield an fd for ``root/parts`` reached one component at a time without following
        symlinks; with ``create``, missing directories are made (and recorded in ``created``)."""
        fd = os.open(root, _ROOT_FLAGS)
        try:
            for i, part in enumerate(parts):
                nxt = _open_child_dir(fd, part, create=create)
                if nxt.created and created is not None:
                    created.append("/".join(parts[: i + 1]))
                os.close(fd)
                fd = nxt.fd
            yield fd
        finally:
            os.close(fd)


def _case_insensitive(folder: Path) -> bool:
    """Probe ``folder`` (or its first entry with a cased name): does a name with its case
    swapped reach the same inode? Without a cased name to try, assume case matters."""
    candidates = [folder]
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        candidates += [folder / e.name for e in entries if e.name.swapcase() != e.name][:1]
    for path in candidates:
        if path.name.swapcase() == path.name:
            continue
        try:
            same = os.stat(path, follow_symlinks=False)
            other = os.stat(path.with_name(path.name.swapcase()), follow_symlinks=False)
        except OSError:
            return False
        return (same.st_dev, same.st_ino) == (other.st_dev, other.st_ino)
    return False


def _names_on_disk(root: Path, rel: tuple[str, ...]) -> tuple[str, ...]:
    """Each existing component of ``rel`` spelled as its directory lists it; the first
    missing one and what follows stay as written."""
    names: list[str] = []
    folder = root
    for i, part in enumerate(rel):
        try:
            listed = os.listdir(folder)
        except OSError:
            return (*names, *rel[i:])
        if part not in listed:
            match = [n for n in listed if n.casefold() == part.casefold()]
            if len(match) != 1:
                return (*names, *rel[i:])
            part = match[0]
        names.append(part)
        folder = folder / part
    return tuple(names)


def _resolve(candidate: Path, requested: str) -> Path:
    try:
        return candidate.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # symlink loops, overlong names
        raise ScopeViolation(f"path {requested!r} cannot be resolved: {exc}") from None


@dataclass(frozen=True)
class _Opened:
    fd: int
    created: bool


def _open_child_dir(dir_fd: int, part: str, *, create: bool) -> _Opened:
    """Open one directory component under ``dir_fd``; a symlink there is a denial."""
    made = False
    try:
        return _Opened(os.open(part, _DIR_FLAGS, dir_fd=dir_fd), False)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):  # lost a race: the open below decides
            os.mkdir(part, 0o777, dir_fd=dir_fd)
            made = True
    except OSError as exc:
        raise _denial_for(exc, part) from None
    try:
        return _Opened(os.open(part, _DIR_FLAGS, dir_fd=dir_fd), made)
    except OSError as exc:
        raise _denial_for(exc, part) from None


def _denial_for(exc: OSError, part: str) -> Exception:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return ScopeViolation(
            f"path component {part!r} is a symlink or not a directory "
            "(it may have changed since the check); refusing to follow it"
        )
    return exc


def _open_regular(dir_fd: int, name: str) -> tuple[int, os.stat_result]:
    """Open an existing regular file without following a symlink or touching devices/FIFOs.
    Its link count is the caller's to judge (:func:`refuse_hard_links`)."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    _require_regular(st, name)
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise _denial_for(exc, name) from None
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise ScopeViolation(f"{name!r} changed while it was being opened")
    return fd, now


def _require_regular(st: os.stat_result, name: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise ScopeViolation(
            f"{name!r} is a symlink that was not there at the check; refusing to follow it"
        )
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{name!r} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{name!r} is not a regular file")


def refuse_hard_links(st: os.stat_result, shown: str) -> None:
    """A file with more than one hard link may have another name outside the roots: the
    path check cannot see that, so reading it is refused unless the tool allows it."""
    if st.st_nlink > 1:
        raise ScopeViolation(
            f"{shown} has {st.st_nlink} hard links, and another name for it may be outside "
            "the roots; refusing to read it (if the links are intended, set "
            "`scope.hardlinks: allow` on this tool)"
        )


def _sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _read_up_to(fd: int, limit: int) -> bytes:
    """Read at most ``limit`` bytes, so a huge file never sits in memory."""
    buf = bytearray()
    while len(buf) < limit and (chunk := os.read(fd, min(_CHUNK, limit - len(buf)))):
        buf += chunk
    return bytes(buf)


def _missing(loc: Located) -> FileNotFoundError:
    return FileNotFoundError(f"no such file or directory: {loc.display}")


class PathArgs(ArgsModel):
    path: str = Field(max_length=4096, description="Path relative to the workspace root.")


class WriteArgs(ArgsModel):
    path: str = Field(max_length=4096, description="Path relative to the workspace root.")
    content: str = Field(description="The complete new file content (UTF-8).")


class ListArgs(ArgsModel):
    path: str = Field(".", max_length=4096, description="Directory relative to the root.")


class _FsTool(BaseTool):
    """Common construction and the canonical path shared by all fs tools."""

    follow_final: ClassVar[bool] = True
    kinds: Kinds = MappingProxyType({"path": frozenset({"path"})})

    def __init__(
        self,
        *,
        name: str,
        roots: list[Path],
        description: str | None = None,
        timeout_s: float = 30.0,
        max_output_bytes: int = 65536,
        undo_max_bytes: int = UNDO_MAX_BYTES,
        hardlinks: bool = False,
    ) -> None:
        super().__init__(
            name=name,
            description=description,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
        )
        if undo_max_bytes < 0:
            raise ToolConfigError(f"tool {name!r}: undo_max_bytes must not be negative")
        self.scope = Confinement(roots)
        self.undo_max_bytes = int(undo_max_bytes)
        self.hardlinks = hardlinks
        """Whether a file with several hard links may be read (``scope.hardlinks``)."""

    @classmethod
    def from_scope(
        cls,
        *,
        name: str,
        description: str | None,
        roots: list[Path],
        commands: dict[str, Any],
        hosts: list[str],
        cwd: Path | None,
        timeout_s: float,
        max_output_bytes: int,
        undo_max_bytes: int = UNDO_MAX_BYTES,
        hardlinks: bool = False,
    ) -> _FsTool:
        if commands or hosts or cwd is not None:
            raise ToolConfigError(
                f"tool {name!r}: fs tools take only scope.roots (got commands/hosts/cwd)"
            )
        return cls(
            name=name,
            roots=roots,
            description=description,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            undo_max_bytes=undo_max_bytes,
            hardlinks=hardlinks,
        )

    def _canonical(self, args: Any) -> Canonical:
        """The path resolved as the filesystem will (``.``, ``..``, doubled and trailing
        separators, symlinks, case where the filesystem ignores it), relative to the first
        root. The model's other arguments are kept as validated."""
        loc = self._locate(args)
        return Canonical({**args.model_dump(), "path": loc.canonical}, (loc, args))

    def _plan(self, arguments: Mapping[str, Any]) -> tuple[Located, Any]:
        args = self.args_model.model_validate(dict(arguments))
        return self.scope.at(args.path, follow_final=self.follow_final), args

    def _locate(self, args: Any) -> Located:
        """Where a call operates; a seam so tests can change the world after the check."""
        return self.scope.locate(args.path, follow_final=self.follow_final)


class FsRead(_FsTool):
    """Read a UTF-8 text file inside the roots, at most ``max_output_bytes`` of it."""

    args_model = PathArgs
    default_description = "Read a text file from the workspace."

    def _execute(self, plan: tuple[Located, PathArgs]) -> ToolResult:
        loc, _ = plan
        try:
            with self.scope.open_dir(loc.root, loc.parent) as dfd:
                fd, st = _open_regular(dfd, loc.name)
        except FileNotFoundError:
            raise _missing(loc) from None
        if not self.hardlinks:
            try:
                refuse_hard_links(st, loc.display)
            except ScopeViolation:
                os.close(fd)
                raise
        with os.fdopen(fd, "rb") as f:
            data = _read_up_to(f.fileno(), self.max_output_bytes + 1)
        return self._result(loc, data, st.st_size)

    def _result(self, loc: Located, data: bytes, size: int) -> ToolResult:
        limit = self.max_output_bytes
        cut = len(data) > limit
        shown = data[:limit]
        text = codecs.getincrementaldecoder("utf-8")("replace").decode(shown, final=not cut)
        binary = b"\x00" in shown or not _is_utf8(shown, final=not cut)
        if binary:
            text = f"[binary file, {size} bytes; shown as UTF-8 with replacements]\n{text}"
        unread = max(size, len(data)) - len(shown)
        text, clipped = self._clip(text, already_dropped=unread)
        return ToolResult(
            ok=True,
            output=text,
            truncated=clipped,
            data={"path": loc.display, "size": size, "binary": binary},
            evidence={
                "path": loc.display,
                "size": size,
                "sha256": None if cut else hashlib.sha256(data).hexdigest(),
            },
        )


def _is_utf8(data: bytes, *, final: bool) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(data, final=final)
    except UnicodeDecodeError:
        return False
    return True


class FsWrite(_FsTool):
    """Write a whole file atomically, creating parent directories inside the root."""

    args_model = WriteArgs
    kinds: Kinds = MappingProxyType({"path": frozenset({"path"}), "content": frozenset({"string"})})
    default_description = "Create or overwrite a text file in the workspace."
    undo_options = ("undo_max_bytes",)

    def _execute(self, plan: tuple[Located, WriteArgs]) -> ToolResult:
        loc, args = plan
        payload = args.content.encode("utf-8")
        created: list[str] = []
        with self.scope.open_dir(loc.root, loc.parent, create=True, created=created) as dfd:
            before = _pre_image(dfd, loc.name, self.undo_max_bytes)
            _atomic_write(dfd, loc.name, payload, before.mode)
        digest = hashlib.sha256(payload).hexdigest()
        return ToolResult(
            ok=True,
            output=f"wrote {len(payload)} bytes to {loc.display}",
            data={"path": loc.display, "bytes": len(payload)},
            evidence={
                "path": loc.display,
                "root": str(loc.root),
                "sha256": digest,
                "bytes": len(payload),
                "pre_image_sha256": before.sha256,
                "created_dirs": created,
            },
            undo=before.undo(loc, digest, self.undo_max_bytes, created=created),
        )


@dataclass(frozen=True)
class _Before:
    """A file as it was before a change: captured first, so the change can be undone."""

    exists: bool
    sha256: str | None
    mode: int
    size: int
    content: bytes | None
    """The exact bytes, or None when absent or over the undo limit."""

    def undo(
        self, loc: Located, post_image: str | None, limit: int, *, created: list[str] = ()
    ) -> Undo:
        """Restore these bytes, or remove a file the call created; irreversible when the
        file was too large to keep (said, never silently skipped)."""
        if self.exists and self.content is None:
            return Irreversible(
                path=loc.display,
                reason=f"{loc.display} held {self.size} bytes before the change, over the "
                f"{limit}-byte undo limit (undo_max_bytes): its previous content was not kept",
            )
        return FileUndo(
            path=loc.display,
            root=str(loc.root),
            pre_image=self.content,
            post_image=post_image,
            mode=self.mode if self.exists else None,
            created_dirs=tuple(created),
        )


def _pre_image(dir_fd: int, name: str, limit: int) -> _Before:
    """The file about to be replaced: hash, mode and (up to ``limit`` bytes) its content;
    absent means a new file (mode 0o666, before the umask)."""
    try:
        fd, st = _open_regular(dir_fd, name)
    except FileNotFoundError:
        return _Before(False, None, 0o666, 0, None)
    try:
        digest = hashlib.sha256()
        kept = bytearray()
        size = 0
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if size <= limit:
                kept += chunk
        content = bytes(kept) if size <= limit else None
        return _Before(True, digest.hexdigest(), stat.S_IMODE(st.st_mode), size, content)
    finally:
        os.close(fd)


def _atomic_write(
    dir_fd: int, name: str, payload: bytes, mode: int, *, exact_mode: bool = False
) -> None:
    """Write to a fresh temp file in the same directory, then rename over ``name``.

    The rename replaces whatever entry is at ``name`` (even a symlink swapped in) instead of
    writing through it, and readers never see a half-written file. ``exact_mode`` sets the
    mode regardless of the umask (a restore must give back exactly what was there).
    """
    tmp = f".{name[:200]}.govrun-{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, _CREATE_FLAGS, 0o600 if exact_mode else mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            if exact_mode:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


# --- what rollback uses: the same walk, never following a symlink -------------------------


@dataclass(frozen=True)
class Found:
    """What is at a path now, looked at without following a symlink."""

    kind: str
    """absent, file, symlink, dir or other."""
    sha256: str | None = None
    """For a file: its content hash."""
    link_target: str | None = None

    def describe(self) -> str:
        if self.kind == "file":
            return f"a file with sha256 {(self.sha256 or '')[:12]}…"
        if self.kind == "symlink":
            return f"a symlink to {self.link_target!r}"
        return {"absent": "absent", "dir": "a folder"}.get(self.kind, "not a regular file")


def look(dir_fd: int, name: str) -> Found:
    """What ``name`` under ``dir_fd`` is now; a file's content is hashed through an fd opened
    with ``O_NOFOLLOW``, so a symlink swapped in is seen as a symlink, never read through."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return Found("absent")
    if stat.S_ISLNK(st.st_mode):
        return Found("symlink", link_target=os.readlink(name, dir_fd=dir_fd))
    if stat.S_ISDIR(st.st_mode):
        return Found("dir")
    if not stat.S_ISREG(st.st_mode):
        return Found("other")
    try:
        fd, _ = _open_regular(dir_fd, name)
    except FileNotFoundError:
        return Found("absent")
    try:
        return Found("file", _sha256_fd(fd))
    finally:
        os.close(fd)


def restore(dir_fd: int, name: str, payload: bytes, mode: int) -> None:
    """Put ``payload`` at ``name`` with exactly ``mode`` (no umask): a temp file renamed over
    whatever entry is there, so a symlink swapped in is replaced, not written through."""
    _atomic_write(dir_fd, name, payload, mode, exact_mode=True)


class FsList(_FsTool):
    """List one directory: sorted entries with type and size (symlinks are not followed)."""

    args_model = ListArgs
    default_description = "List the entries of a directory in the workspace."

    def _execute(self, plan: tuple[Located, ListArgs]) -> ToolResult:
        loc, _ = plan
        try:
            with self.scope.open_dir(loc.root, loc.rel) as dfd:
                entries = _entries(dfd)
        except FileNotFoundError:
            raise _missing(loc) from None
        shown = entries[:MAX_LIST_ENTRIES]
        text = "\n".join(_entry_line(e) for e in shown) or "(empty directory)"
        if len(entries) > len(shown):
            text += f"\n[{len(entries) - len(shown)} more entries not shown]"
        text, clipped = self._clip(text)
        return ToolResult(
            ok=True,
            output=text,
            truncated=clipped or len(entries) > len(shown),
            data={"path": loc.display, "entries": shown, "total": len(entries)},
            evidence={"path": loc.display, "count": len(entries)},
        )


def _entries(dir_fd: int) -> list[dict[str, Any]]:
    out = []
    with os.scandir(dir_fd) as it:
        for entry in it:
            st = entry.stat(follow_symlinks=False)
            kind = _kind(st.st_mode)
            item: dict[str, Any] = {"name": entry.name, "type": kind, "size": st.st_size}
            if kind == "symlink":
                item["target"] = os.readlink(entry.name, dir_fd=dir_fd)
            out.append(item)
    return sorted(out, key=lambda e: e["name"])


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def _entry_line(e: dict[str, Any]) -> str:
    if e["type"] == "dir":
        return f"dir      {e['name']}/"
    if e["type"] == "symlink":
        return f"symlink  {e['name']} -> {e['target']}"
    return f"{e['type']:<8} {e['name']}  ({e['size']} bytes)"


class FsDelete(_FsTool):
    """Delete one file or symlink (never a directory); the link itself, not its target."""

    args_model = PathArgs
    default_description = "Delete a file from the workspace."
    follow_final = False
    undo_options = ("undo_max_bytes",)

    def _execute(self, plan: tuple[Located, PathArgs]) -> ToolResult:
        loc, _ = plan
        undo: Undo | None = None
        try:
            with self.scope.open_dir(loc.root, loc.parent) as dfd:
                before, image = _delete_pre_image(dfd, loc.name, self.undo_max_bytes)
                if before is not None:
                    undo = self._undo(loc, before, image)
                    os.unlink(loc.name, dir_fd=dfd)
        except FileNotFoundError:  # a missing parent: there was nothing to delete
            before = None
        evidence: dict[str, Any] = {
            "path": loc.display,
            "root": str(loc.root),
            "existed": before is not None,
        }
        evidence.update(before or {"sha256_before": None})
        msg = f"deleted {loc.display}" if before else f"{loc.display} did not exist"
        return ToolResult(
            ok=True, output=msg, data={"path": loc.display}, evidence=evidence, undo=undo
        )

    def _undo(self, loc: Located, before: dict[str, Any], image: _Before | None) -> Undo:
        """How to bring the deleted entry back. A symlink is not recreated: rollback only
        ever writes regular files, so it cannot be made to point anywhere."""
        if image is None:
            return Irreversible(
                path=loc.display,
                reason=f"{loc.display} was a symlink to {before.get('link_target')!r}; "
                "rollback does not recreate links",
            )
        return image.undo(loc, None, self.undo_max_bytes)


def _delete_pre_image(
    dir_fd: int, name: str, limit: int
) -> tuple[dict[str, Any] | None, _Before | None]:
    """What is about to be deleted (kind, hash or link target; None if nothing is) and, for
    a file, its pre-image: one read, so the hash and the kept bytes agree."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None, None
    if stat.S_ISLNK(st.st_mode):
        link = {
            "kind": "symlink",
            "sha256_before": None,
            "link_target": os.readlink(name, dir_fd=dir_fd),
        }
        return link, None
    image = _pre_image(dir_fd, name, limit)
    if not image.exists:  # gone between the stat and the open: nothing to delete
        return None, None
    return {"kind": "file", "sha256_before": image.sha256}, image
