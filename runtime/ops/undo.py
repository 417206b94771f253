"""Undo: how a run's recorded effects are undone, newest first (DESIGN §2 step 8, §6).

The mechanics the loop uses live (``on_failure: rollback``) and ``govrun rollback``
(:mod:`govrun.runtime.ops.rollback`) drives after the fact.

Decisions, as built:

- **The call records its own undo.** fs.write and fs.delete capture the file's previous
  bytes and mode *before* changing it and hand them over as ``ToolResult.undo``; the loop
  stores the bytes in the trace's content-addressed sidecar (``<trace>.blobs/<sha256>``)
  before ``tool_finished`` is written, and records ``evidence.undo``:

  - ``{kind: restore, path, root, pre_image: SHA, post_image: SHA|null, mode, created_dirs}``
    — the file existed: put its bytes back (``post_image`` null: the call deleted it);
  - ``{kind: remove, path, root, pre_image: null, post_image: SHA, mode: null,
    created_dirs}`` — the call created it: remove it, and the folders it created;
  - ``{kind: command, argv}`` — a shell tool's declared ``undo:``, rendered and vetted;
  - ``{kind: irreversible, reason, path?}`` — over ``undo_max_bytes``, a deleted symlink,
    an undo command the allowlist refuses. Reported, never silently skipped.

  ``path`` is relative to ``root``; ``root`` is absolute because rollback acts later, from
  wherever it is started.
- **Refuse per file when the world moved on.** A file is touched only if it still holds
  exactly what the run left (``post_image``, or absent when the run deleted it); otherwise
  it is refused ("changed since the run") unless ``force``. Each file is decided on its
  own: a refused file keeps its current content and the others are still restored. A file
  that already holds its pre-image is reported as already undone. Every path goes through
  the fs tool's own confinement (resolve inside the root, walk with ``O_NOFOLLOW``), and a
  restore renames a temp file over the entry, so a symlink swapped in is refused — and even
  with ``force`` is replaced, never written through.
- **Failure classes** (on each ``rollback`` event and the rollback trace's
  ``run_finished``): ``verification_failed`` — refused, the file changed since the run;
  ``policy_denied`` — a folder on the way became a symlink (refused even with ``force``);
  ``missing_evidence`` — irreversible, or the pre-image blob is missing or altered;
  ``tool_error`` (or the shell tool's own class) — the undo itself failed.
- **Replay.** Undoing touches the world, so it crosses the ``Rollbacker`` port: live it
  acts, in replay the recorded ``rollback`` events answer (:mod:`govrun.runtime.replayer`).
- **Trust.** ``govrun rollback`` acts only on a trace that verifies; a crashed (torn or
  unfinished) but intact trace is fine, a tampered one is refused whatever the flags.
- **Secrets.** Pre-images are raw file contents: trace redaction does not apply to them
  (restoring needs the exact bytes). They are stored 0600, next to the trace.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from govrun.runtime.ports import Rollbacker
from govrun.runtime.tools.base import (
    CommandUndo,
    FileUndo,
    Irreversible,
    ScopeViolation,
    Tool,
    Undo,
)
from govrun.runtime.tools.fs import Confinement, Found, Located, look, restore
from govrun.runtime.trace.reader import read_blob

if TYPE_CHECKING:
    pass

Action = Literal["restored", "removed", "undone", "refused", "skipped", "failed"]
ToolLookup = Callable[[str], Tool | None]


def undo_record(undo: Undo, store: Callable[[bytes], str]) -> dict[str, Any]:
    """``evidence.undo`` for a tool's :class:`Undo`. The pre-image bytes go to the sidecar
    through ``store`` first, so the record never names a blob that is not on disk."""
    if isinstance(undo, FileUndo):
        return {
            "kind": undo.kind,
            "path": undo.path,
            "root": undo.root,
            "pre_image": None if undo.pre_image is None else store(undo.pre_image),
            "post_image": undo.post_image,
            "mode": undo.mode,
            "created_dirs": list(undo.created_dirs),
        }
    if isinstance(undo, CommandUndo):
        return {"kind": "command", "argv": list(undo.argv)}
    assert isinstance(undo, Irreversible)
    return {"kind": "irreversible", "reason": undo.reason, "path": undo.path}


@dataclass(frozen=True)
class Effect:
    """One undoable effect: a call's ``evidence.undo`` and where it came from."""

    step: int
    call_id: str
    tool: str
    undo: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.undo.get("kind", ""))

    @property
    def target(self) -> str:
        """What is undone, for people: the file, or the undo command."""
        if self.kind == "command":
            return shlex.join(str(a) for a in self.undo.get("argv") or [])
        return str(self.undo.get("path") or self.tool)

    @classmethod
    def from_event(cls, e: Mapping[str, Any]) -> Effect | None:
        """The effect a stored ``tool_finished`` records, if any (blobs already inlined)."""
        undo = (e.get("evidence") or {}).get("undo")
        if e.get("type") != "tool_finished" or not isinstance(undo, dict):
            return None
        return cls(int(e.get("step", 0)), str(e.get("call_id")), str(e.get("tool")), undo)


@dataclass(frozen=True)
class UndoOutcome:
    """What undoing one effect did: the payload of one ``rollback`` event."""

    call_id: str
    call_step: int | None
    tool: str | None
    target: str
    kind: str | None
    action: Action
    ok: bool
    reason: str
    forced: bool = False
    failure_class: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    """Planned, not done (``--dry-run``); never recorded."""

    _FIELDS: ClassVar[tuple[str, ...]] = (
        "call_id",
        "call_step",
        "tool",
        "target",
        "kind",
        "action",
        "ok",
        "reason",
        "forced",
        "failure_class",
        "evidence",
    )

    def payload(self) -> dict[str, Any]:
        """The ``rollback`` event's payload."""
        return {name: getattr(self, name) for name in self._FIELDS}

    @classmethod
    def from_event(cls, e: Mapping[str, Any]) -> UndoOutcome:
        """A recorded ``rollback`` event as an outcome (replay answers with it)."""
        return cls(
            call_id=str(e.get("call_id", "")),
            call_step=e.get("call_step"),
            tool=e.get("tool"),
            target=str(e.get("target", "")),
            kind=e.get("kind"),
            action=e.get("action") or ("restored" if e.get("ok") else "refused"),
            ok=bool(e.get("ok")),
            reason=str(e.get("reason", "")),
            forced=bool(e.get("forced", False)),
            failure_class=e.get("failure_class"),
            evidence=dict(e.get("evidence") or {}),
        )

    @classmethod
    def of(cls, effect: Effect, action: Action, reason: str, **kw: Any) -> UndoOutcome:
        """The outcome for ``effect``; ok unless said otherwise or the action failed."""
        ok = kw.pop("ok", action in ("restored", "removed", "undone"))
        return cls(
            call_id=effect.call_id,
            call_step=effect.step,
            tool=effect.tool,
            target=effect.target,
            kind=effect.kind or None,
            action=action,
            ok=ok,
            reason=reason,
            **kw,
        )


def undo_all(
    effects: Iterable[Effect], rollbacker: Rollbacker, record: Callable[[UndoOutcome], None]
) -> list[UndoOutcome]:
    """Undo ``effects`` newest first, recording each outcome before the next undo starts."""
    outcomes = []
    for effect in reversed(list(effects)):
        outcome = rollbacker.undo(effect)
        record(outcome)
        outcomes.append(outcome)
    return outcomes


def describe(outcomes: Sequence[UndoOutcome]) -> str:
    """One line: how many effects were undone, and what happened to the others."""
    done = sum(o.ok for o in outcomes)
    text = f"{done} of {len(outcomes)} effect{'s' if len(outcomes) != 1 else ''} undone"
    counts: dict[str, int] = {}
    for o in outcomes:
        if not o.ok:
            counts[o.action] = counts.get(o.action, 0) + 1
    if counts:
        text += " (" + ", ".join(f"{n} {action}" for action, n in counts.items()) + ")"
    return text


# --- the live adapter ------------------------------------------------------------------------


class _Refusal(Exception):
    def __init__(self, action: Action, failure_class: str, reason: str) -> None:
        super().__init__(reason)
        self.action: Action = action
        self.failure_class = failure_class
        self.reason = reason


class LiveRollbacker:
    """The live ``Rollbacker``: restores files from their pre-images and runs undo commands
    through the shell tool that ran the call. ``dry_run`` plans without touching anything
    (keeping track of what the earlier undos would have done, so a file written twice is
    planned right); ``force`` undoes a file even when it changed since the run."""

    def __init__(
        self,
        *,
        blob_dirs: Sequence[Path],
        tools: ToolLookup,
        force: bool = False,
        dry_run: bool = False,
    ) -> None:
        self.blob_dirs = list(blob_dirs)
        self.tools = tools
        self.force = force
        self.dry_run = dry_run
        self._planned: dict[tuple[str, tuple[str, ...]], Found] = {}

    def undo(self, effect: Effect) -> UndoOutcome:
        try:
            if effect.kind in ("restore", "remove"):
                outcome = self._file(effect)
            elif effect.kind == "command":
                outcome = self._command(effect)
            elif effect.kind == "irreversible":
                reason = str(effect.undo.get("reason") or "recorded as irreversible")
                return UndoOutcome.of(
                    effect, "skipped", reason, ok=False, failure_class="missing_evidence"
                )
            else:
                raise _Refusal("failed", "missing_evidence", f"unknown undo {effect.kind!r}")
        except _Refusal as r:
            return UndoOutcome.of(
                effect, r.action, r.reason, ok=False, failure_class=r.failure_class
            )
        except Exception as exc:  # the rollback boundary: a failed undo is an outcome
            return UndoOutcome.of(
                effect, "failed", f"{type(exc).__name__}: {exc}", failure_class="tool_error"
            )
        return replace(outcome, dry_run=self.dry_run)

    # --- files ----------------------------------------------------------------------------

    def _file(self, effect: Effect) -> UndoOutcome:
        u = effect.undo
        root, path = u.get("root"), u.get("path")
        if not isinstance(root, str) or not isinstance(path, str):
            raise _Refusal("failed", "missing_evidence", "the undo record names no root or path")
        if Path(root).resolve(strict=False) != Path(root):  # recorded resolved: it moved
            raise _Refusal(
                "refused", "policy_denied", f"refused: the root {root} is now a symlink or gone"
            )
        scope = Confinement([Path(root)])
        try:
            loc = scope.locate(path, follow_final=False)
            found = self._look(scope, loc)
        except ScopeViolation as exc:
            raise _Refusal("refused", "policy_denied", f"refused: {exc.message}") from None
        post, pre = u.get("post_image"), u.get("pre_image")
        evidence: dict[str, Any] = {
            "expected": post or "absent",
            "found": found.sha256 or found.kind,
        }
        forced = False
        if not _holds(found, post):
            if _holds(found, pre) and effect.kind == "remove":  # its folders may remain
                return self._remove(effect, scope, loc, found, evidence, forced)
            if _holds(found, pre):
                return UndoOutcome.of(
                    effect,
                    "skipped",
                    f"{path} already holds what it held before the call",
                    ok=True,
                    evidence=evidence,
                )
            if not self.force:
                why = "deleted" if found.kind == "absent" else f"now {found.describe()}"
                if post is None and found.kind != "absent":
                    why = f"the run deleted it, and it is now {found.describe()}"
                raise _Refusal(
                    "refused",
                    "verification_failed",
                    f"changed since the run: {why} (use --force to undo anyway)",
                )
            forced = True
        if effect.kind == "restore":
            return self._restore(effect, scope, loc, str(pre), evidence, forced)
        return self._remove(effect, scope, loc, found, evidence, forced)

    def _look(self, scope: Confinement, loc: Located) -> Found:
        planned = self._planned.get((str(loc.root), loc.rel))
        if planned is not None:
            return planned
        try:
            with scope.open_dir(loc.root, loc.parent) as dfd:
                return look(dfd, loc.name)
        except FileNotFoundError:
            return Found("absent")

    def _restore(
        self,
        effect: Effect,
        scope: Confinement,
        loc: Located,
        pre: str,
        evidence: dict[str, Any],
        forced: bool,
    ) -> UndoOutcome:
        data = self._pre_image(pre)
        raw_mode = effect.undo.get("mode")
        mode = raw_mode if isinstance(raw_mode, int) else 0o644
        if self.dry_run:
            self._planned[(str(loc.root), loc.rel)] = Found("file", pre)
        else:
            try:
                with scope.open_dir(loc.root, loc.parent, create=True) as dfd:
                    restore(dfd, loc.name, data, mode)
            except ScopeViolation as exc:
                raise _Refusal("refused", "policy_denied", f"refused: {exc.message}") from None
        return UndoOutcome.of(
            effect,
            "restored",
            f"{'would restore' if self.dry_run else 'restored'} {loc.display} "
            f"({len(data)} bytes, mode {mode:o})"
            + (" despite changes (--force)" if forced else ""),
            forced=forced,
            evidence={**evidence, "restored": pre, "mode": mode},
        )

    def _remove(
        self,
        effect: Effect,
        scope: Confinement,
        loc: Located,
        found: Found,
        evidence: dict[str, Any],
        forced: bool,
    ) -> UndoOutcome:
        dirs = [str(d) for d in effect.undo.get("created_dirs") or []]
        gone: list[str] = dirs
        kept: list[str] = []
        if self.dry_run:
            self._planned[(str(loc.root), loc.rel)] = Found("absent")
        else:
            try:
                if found.kind != "absent":
                    with (
                        scope.open_dir(loc.root, loc.parent) as dfd,
                        contextlib.suppress(FileNotFoundError),
                    ):
                        os.unlink(loc.name, dir_fd=dfd)
            except ScopeViolation as exc:
                raise _Refusal("refused", "policy_denied", f"refused: {exc.message}") from None
            gone, kept = _remove_dirs(scope, loc.root, dirs)
        if found.kind == "absent" and not gone and not forced:
            return UndoOutcome.of(
                effect,
                "skipped",
                f"{loc.display} is already gone, as before the call",
                ok=True,
                evidence={**evidence, "kept_dirs": kept},
            )
        verb = "would remove" if self.dry_run else "removed"
        text = f"{verb} {loc.display}, which the run created"
        if found.kind == "absent":
            text = f"{loc.display} was already gone; {verb} what the run created with it"
        if gone:
            text += f", and the folder{'s' if len(gone) > 1 else ''} {', '.join(gone)}"
        if kept:
            text += f"; kept {', '.join(kept)} (not empty)"
        if forced:
            text += " despite changes (--force)"
        return UndoOutcome.of(
            effect, "removed", text, forced=forced, evidence={**evidence, "kept_dirs": kept}
        )

    def _pre_image(self, digest: str) -> bytes:
        """The pre-image from the sidecar, checked against its hash: rollback never writes
        bytes the run did not record."""
        for folder in self.blob_dirs:
            data = read_blob(folder / digest)
            if data is None:
                continue
            if hashlib.sha256(data).hexdigest() == digest:
                return data
            raise _Refusal(
                "failed", "missing_evidence", f"pre-image {digest[:12]}… in {folder} was altered"
            )
        where = ", ".join(str(f) for f in self.blob_dirs) or "no sidecar folder"
        raise _Refusal(
            "failed", "missing_evidence", f"pre-image {digest[:12]}… is missing from {where}"
        )

    # --- commands -------------------------------------------------------------------------

    def _command(self, effect: Effect) -> UndoOutcome:
        from govrun.runtime.tools.shell import ShellTool

        argv = [str(a) for a in effect.undo.get("argv") or []]
        tool = self.tools(effect.tool)
        if not isinstance(tool, ShellTool):
            raise _Refusal(
                "failed", "tool_error", f"{effect.tool} is not a shell tool of the run's manifest"
            )
        if self.dry_run:
            return UndoOutcome.of(effect, "undone", f"would run {shlex.join(argv)}")
        result = tool.run_argv(argv)
        evidence = {"argv": argv, "exit_code": result.data.get("exit_code")}
        if not result.ok:
            return UndoOutcome.of(
                effect,
                "failed",
                f"{shlex.join(argv)}: {result.error}",
                failure_class=result.failure_class or "tool_error",
                evidence=evidence,
            )
        return UndoOutcome.of(effect, "undone", f"ran {shlex.join(argv)}", evidence=evidence)


def _holds(found: Found, digest: Any) -> bool:
    """Whether ``found`` is a file with content ``digest`` (None: absent)."""
    if digest is None:
        return found.kind == "absent"
    return found.kind == "file" and found.sha256 == digest


def _remove_dirs(
    scope: Confinement, root: Path, dirs: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Remove folders the run created, deepest first: (removed, kept). A folder someone
    filled since is kept (and reported); one already gone is neither."""
    removed, kept = [], []
    for d in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
        try:
            loc = scope.locate(d, follow_final=False)
            with scope.open_dir(loc.root, loc.parent) as dfd:
                os.rmdir(loc.name, dir_fd=dfd)
            removed.append(d)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise
            kept.append(d)
        except ScopeViolation:
            kept.append(d)
    return sorted(removed), kept
