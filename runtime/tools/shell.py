"""shell: run one allowlisted command, without a shell, confined to its roots.

The command line is split with ``shlex`` into an argv and executed with ``shell=False``,
so ``;``, ``&&``, ``|`` are plain characters inside arguments. The canonical call is that
argv — quotes and escapes removed — plus the root-relative paths its arguments name: what
policy judges is exactly the words the program receives. A word a shell would expand
(``$NAME``, ``${…}``, ``$(…)``, ``$'…'``, backticks, a leading ``~``) is refused: govrun
expands nothing, and nobody should approve a call believing it would — except in the
arguments of an interpreter the operator allowlisted on purpose (``sh -c``), which are code
that program runs.
Every command, subcommand and flag must be allowlisted; every positional argument is
treated as a path and must resolve inside the roots. The process runs in its own session
with a fixed minimal environment; its whole process group is killed when it ends, times
out or floods output, so nothing it started outlives the call.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import select
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from govrun.runtime.tools.base import (
    ArgsModel,
    BaseTool,
    Canonical,
    CommandUndo,
    Irreversible,
    Kinds,
    ScopeViolation,
    ToolConfigError,
    ToolResult,
    Undo,
    describe_roots,
    portable,
)
from govrun.runtime.tools.fs import refuse_hard_links
from govrun.runtime.tools.git_guard import git_environment, vet_repository

FIXED_PATH = "/usr/local/bin:/usr/bin:/bin"
"""Where commands are looked up; the model's (or the operator's) PATH never is."""

WRAPPERS = frozenset(
    {
        "env",
        "timeout",
        "nice",
        "ionice",
        "nohup",
        "setsid",
        "stdbuf",
        "taskset",
        "chroot",
        "unshare",
        "nsenter",
        "xargs",
        "parallel",
        "watch",
        "time",
        "script",
        "flock",
        "strace",
        "sh",
        "bash",
        "zsh",
        "dash",
        "ksh",
        "fish",
        "csh",
        "tcsh",
        "busybox",
        "toybox",
        "python",
        "python3",
        "perl",
        "ruby",
        "node",
        "php",
        "lua",
        "awk",
        "gawk",
        "sudo",
        "su",
        "doas",
        "pkexec",
        "runuser",
    }
)
"""Commands that run other commands. Only allowed when named in the allowlist; listed so the
denial can say why."""

DANGEROUS_FLAGS: dict[str, frozenset[str]] = {
    "find": frozenset(
        {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls"}
    ),
    "git": frozenset(
        {
            "-c",
            "--config-env",
            "--exec-path",
            "-C",
            "--git-dir",
            "--work-tree",
            "--upload-pack",
            "--receive-pack",
            "--ext-diff",
            "--output",
        }
    ),
    "rsync": frozenset({"-e", "--rsh", "--rsync-path"}),
    "tar": frozenset(
        {
            "--to-command",
            "--use-compress-program",
            "-I",
            "--checkpoint-action",
            "--info-script",
            "--new-volume-script",
            "-F",
        }
    ),
}
"""Flags that execute code or escape the working tree. Like every flag they need listing,
and they are never matched by splitting combined short flags (``-exec`` is not ``-e -x ...``)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_EXPANSION = re.compile(r"\$.|`|^~")
"""What a shell would expand in a word — a ``$`` anywhere but at its end (parameters,
command substitution, ANSI-C quoting: after quote removal ``$'\x2e'`` is ``$\x2e``),
backticks, a leading ``~``: refused, since the program would receive it literally. A
trailing ``$`` (a regex anchor) expands to nothing and stays."""
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_UNDO_FIELD = re.compile(r"args\.([A-Za-z_][A-Za-z0-9_]*)|argv\.([0-9]+)")
_CHUNK = 1 << 16
_DRAIN_AFTER_KILL_S = 1.0


class CommandRule(BaseModel):
    """What one allowlisted command may be called with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flags: frozenset[str] = Field(default_factory=frozenset, description="Allowed flags.")
    subcommands: frozenset[str] | None = Field(
        None, description="If set, the first positional argument must be one of these."
    )
    max_args: int | None = Field(
        None, ge=0, description="Most positional arguments, not counting the subcommand."
    )

    @field_validator("flags")
    @classmethod
    def _flags_start_with_dash(cls, flags: frozenset[str]) -> frozenset[str]:
        bad = sorted(f for f in flags if not f.startswith("-") or f == "-")
        if bad:
            raise ValueError(f"flags must start with '-': {bad}")
        return flags


class ShellArgs(ArgsModel):
    command: str = Field(max_length=8192, description="One command line, e.g. `git status`.")


@dataclass
class _Capture:
    """One output stream: keeps the first ``limit`` bytes, counts and hashes all of them."""

    limit: int
    kept: bytearray = field(default_factory=bytearray)
    total: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.digest.update(chunk)
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]


@dataclass
class _Outcome:
    exit_code: int
    stdout: _Capture
    stderr: _Capture
    timed_out: bool
    flooded: bool


class ShellTool(BaseTool):
    """Run one allowlisted command line inside the workspace."""

    args_model = ShellArgs
    kinds: Kinds = MappingProxyType({"command": frozenset({"argv"}), "paths": frozenset({"paths"})})
    default_description = "Run one allowlisted command (no shell features) in the workspace."
    undo_options = ("undo",)

    def __init__(
        self,
        *,
        name: str,
        commands: dict[str, Any],
        roots: list[Path] | None = None,
        cwd: Path | None = None,
        description: str | None = None,
        timeout_s: float = 30.0,
        max_output_bytes: int = 65536,
        undo: str | None = None,
        hardlinks: bool = False,
    ) -> None:
        super().__init__(
            name=name,
            description=description,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
        )
        self.hardlinks = hardlinks
        """Whether an argument may name a file with several hard links (``scope.hardlinks``)."""
        self.rules = _parse_rules(name, commands)
        self.roots = [Path(r).resolve(strict=False) for r in roots or []]
        self.cwd = _working_dir(name, cwd, self.roots)
        self.drain_limit = max(16 * self.max_output_bytes, 1 << 20)
        self.undo_words = self._undo_template(undo) if undo is not None else None
        if self.description == self.default_description:
            self.description += " Allowed commands: " + ", ".join(sorted(self.rules)) + "."

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
        undo: str | None = None,
        hardlinks: bool = False,
    ) -> ShellTool:
        if hosts:
            raise ToolConfigError(f"tool {name!r}: shell takes no scope.hosts")
        return cls(
            name=name,
            commands=commands,
            roots=roots,
            cwd=cwd,
            description=description,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            undo=undo,
            hardlinks=hardlinks,
        )

    # --- the canonical call -------------------------------------------------------------

    def _canonical(self, args: ShellArgs) -> Canonical:
        argv = _split(args.command)
        paths = self._vet(argv)
        return Canonical({"command": argv, "paths": paths}, argv)

    def _plan(self, arguments: Mapping[str, Any]) -> list[str]:
        argv = arguments.get("command")
        if not isinstance(argv, list) or not all(isinstance(w, str) for w in argv):
            raise ScopeViolation(
                "a canonical shell call is a list of words", failure_class="invalid_arguments"
            )
        return list(argv)

    def parse(self, command: str) -> list[str]:
        """Split and vet a command line; returns the argv or raises ``ScopeViolation``."""
        return self.vet(_split(command))

    def vet(self, argv: list[str]) -> list[str]:
        """Vet an argv against the allowlist and the roots; returns it or raises
        ``ScopeViolation``. The model's commands and undo commands pass the same gate."""
        self._vet(argv)
        return argv

    def _vet(self, argv: list[str]) -> list[str]:
        """:meth:`vet`, returning the root-relative paths the arguments name, in order."""
        if not argv:
            raise ScopeViolation("command is empty", failure_class="invalid_arguments")
        for word in argv if argv[0] not in WRAPPERS else ():  # an interpreter's code is its own
            if _EXPANSION.search(word):
                raise ScopeViolation(
                    f"{argv[0]}: argument {word!r} holds a shell expansion ($…, `…` or a "
                    "leading ~); govrun runs no shell and expands nothing, so write the "
                    "value itself",
                    failure_class="invalid_arguments",
                )
        rule = self._rule_for(argv[0])
        paths: list[str] = []
        positionals = self._vet_arguments(argv[0], argv[1:], rule, paths)
        if rule.subcommands is not None:
            if not positionals or positionals[0] not in rule.subcommands:
                got = repr(positionals[0]) if positionals else "none"
                raise ScopeViolation(
                    f"{argv[0]}: subcommand {got} is not allowed; allowed: "
                    + ", ".join(sorted(rule.subcommands))
                )
            positionals = positionals[1:]
        if rule.max_args is not None and len(positionals) > rule.max_args:
            raise ScopeViolation(
                f"{argv[0]}: {len(positionals)} positional arguments, at most {rule.max_args}"
            )
        return paths

    def _rule_for(self, cmd: str) -> CommandRule:
        if "/" in cmd or not _NAME.fullmatch(cmd):
            raise ScopeViolation(f"command {cmd!r} must be a bare command name, not a path")
        rule = self.rules.get(cmd)
        if rule is None:
            why = " (it runs other commands)" if cmd in WRAPPERS else ""
            raise ScopeViolation(
                f"command {cmd!r} is not allowed{why}; allowed: " + ", ".join(sorted(self.rules))
            )
        return rule

    def _vet_arguments(
        self, cmd: str, args: list[str], rule: CommandRule, paths: list[str]
    ) -> list[str]:
        """Check every flag and path-like value; return the positional arguments in order,
        and add the root-relative form of every path they name to ``paths``.

        ``--`` is passed through but does not switch off the flag check for what follows:
        not every program honours it (``find -- . -exec cmd ;`` still executes ``cmd``), so
        a dash-led argument after it must still be an allowed flag. Fails closed.
        """
        positionals: list[str] = []
        for arg in args:
            if arg == "--":
                continue
            if arg.startswith("-") and arg != "-":
                value = self._vet_flag(cmd, arg, rule)
                if value is not None:
                    paths += self._vet_path(cmd, value)
            else:
                paths += self._vet_path(cmd, arg)
                positionals.append(arg)
        return positionals

    def _vet_flag(self, cmd: str, arg: str, rule: CommandRule) -> str | None:
        """An exact listed flag; ``--long=value`` by its name (the value is returned, to be
        path-checked); or combined short flags ``-la`` whose letters are each listed."""
        if arg in rule.flags:
            return None
        name, eq, value = arg.partition("=")
        if eq and arg.startswith("--") and name in rule.flags:
            return value
        dangerous = DANGEROUS_FLAGS.get(cmd, frozenset())
        if not eq and not arg.startswith("--") and name not in dangerous and name[1:].isalnum():
            missing = [f"-{c}" for c in name[1:] if f"-{c}" not in rule.flags]
            if not missing:
                return None
        why = " (it can run code or leave the workspace)" if name in dangerous else ""
        allowed = ", ".join(sorted(rule.flags)) or "none"
        raise ScopeViolation(f"{cmd}: flag {name!r} is not allowed{why}; allowed: {allowed}")

    def _vet_path(self, cmd: str, arg: str) -> list[str]:
        """Treat every positional as a path: it must resolve inside a root (fails closed),
        and must not name a file with several hard links unless the scope allows them.
        Returns its root-relative form (none without roots, or for an empty word)."""
        if not self.roots or not arg:
            return []
        try:
            resolved = (self.cwd / arg).resolve(strict=False)
        except (OSError, RuntimeError) as exc:
            raise ScopeViolation(f"{cmd}: argument {arg!r} cannot be resolved: {exc}") from None
        root = next((r for r in self.roots if resolved.is_relative_to(r)), None)
        if root is None:
            raise ScopeViolation(
                f"{cmd}: argument {arg!r} resolves to {portable(resolved, self.roots[0])}, "
                f"outside {describe_roots(self.roots)}"
            )
        if not self.hardlinks:
            try:
                st = os.stat(resolved)
            except OSError:
                st = None
            if st is not None and stat.S_ISREG(st.st_mode):
                refuse_hard_links(st, f"{cmd}: argument {arg!r}")
        return [os.path.relpath(resolved, self.roots[0])]

    # --- execution ----------------------------------------------------------------------

    def _execute(self, plan: list[str]) -> ToolResult:
        argv = self.vet(plan)  # the scope again, as the call runs: the world may have moved
        result = self._spawn(argv)
        if result.ok and self.undo_words is not None:
            result = result.model_copy(update={"undo": self._undo_for(argv)})
        return result

    def run_argv(self, argv: Sequence[str]) -> ToolResult:
        """Run an argv that did not come from the model (a recorded undo command), through
        the same allowlist, confinement, environment and limits as every call. Never raises."""
        return self._safely(lambda: self._spawn(self.vet(list(argv))))

    # --- undo ---------------------------------------------------------------------------

    def _undo_template(self, template: str) -> list[str]:
        """Split the declared ``undo:`` into words once, and refuse a command the allowlist
        does not allow (or a flag it does not, where the flag is written literally).
        Placeholders fill whole words later, so a value is never re-split by a shell."""
        try:
            words = shlex.split(template, posix=True)
        except ValueError as exc:
            raise ToolConfigError(f"tool {self.name!r}: undo does not parse: {exc}") from None
        if not words:
            raise ToolConfigError(f"tool {self.name!r}: undo is empty")
        for word in words:
            for inner in _PLACEHOLDER.findall(word):
                if not _UNDO_FIELD.fullmatch(inner):
                    raise ToolConfigError(
                        f"tool {self.name!r}: undo has unknown placeholder {{{inner}}}; "
                        "use {argv.N} (word N of the command that ran) or {args.NAME}"
                    )
        try:
            if _PLACEHOLDER.search(words[0]):
                raise ScopeViolation("the command name must be written literally")
            rule = self._rule_for(words[0])
            for word in words[1:]:
                literal_flag = word.startswith("-") and word not in ("-", "--")
                if literal_flag and not _PLACEHOLDER.search(word):
                    self._vet_flag(words[0], word, rule)
        except ScopeViolation as exc:
            raise ToolConfigError(f"tool {self.name!r}: undo {template!r}: {exc.message}") from None
        return words

    def _undo_for(self, argv: list[str]) -> Undo:
        """The undo command for this call, vetted now: one the scope refuses is recorded as
        irreversible with the reason, never run later. ``{args.command}`` is the command
        that ran, as one line."""
        assert self.undo_words is not None
        values = {"command": shlex.join(argv)}
        try:
            rendered = [_fill(word, values, argv) for word in self.undo_words]
            self.vet(rendered)
        except ScopeViolation as exc:
            return Irreversible(reason=f"undo of {shlex.join(argv)} is not possible: {exc.message}")
        return CommandUndo(argv=tuple(rendered))

    def _spawn(self, argv: list[str]) -> ToolResult:
        exe = shutil.which(argv[0], path=FIXED_PATH)
        if exe is None:
            raise FileNotFoundError(f"command {argv[0]!r} not found on {FIXED_PATH}")
        if argv[0] == "git":  # the repository is part of the world at the moment git runs
            vet_repository(self.cwd, self.roots)
        outcome = _run_bounded(
            [exe, *argv[1:]],
            cwd=self.cwd,
            env=self._env(),
            timeout_s=self.timeout_s,
            drain_limit=self.drain_limit,
            keep=self.max_output_bytes,
        )
        return self._result(argv, exe, outcome)

    def _env(self) -> dict[str, str]:
        """A fixed minimal environment: no inherited secrets, and git isolated from the
        user's and the repository's config that runs programs (see ``git_guard``)."""
        env = {
            "PATH": FIXED_PATH,
            "LANG": "C.UTF-8",
            "HOME": str(self.cwd),
            "PAGER": "cat",
        }
        env.update(git_environment(self.roots))
        return env

    def _result(self, argv: list[str], exe: str, out: _Outcome) -> ToolResult:
        text, truncated = self._compose(out)
        evidence = {
            "argv": argv,
            "executable": exe,
            "cwd": str(self.cwd),
            "exit_code": out.exit_code,
            "stdout_sha256": out.stdout.digest.hexdigest(),
            "stdout_bytes": out.stdout.total,
            "stderr_bytes": out.stderr.total,
        }
        data = {"exit_code": out.exit_code}
        if out.timed_out:
            err = f"{argv[0]} timed out after {self.timeout_s}s; process group killed"
            return ToolResult.failure(
                "timeout", err, output=text, data=data, evidence=evidence, truncated=truncated
            )
        if out.flooded:
            err = f"{argv[0]} wrote over {self.drain_limit} bytes; process group killed"
            return ToolResult.failure(
                "tool_error", err, output=text, data=data, evidence=evidence, truncated=True
            )
        if out.exit_code != 0:
            return ToolResult.failure(
                "tool_error",
                f"{argv[0]} exited with {out.exit_code}",
                output=text or f"exit code {out.exit_code}",
                data=data,
                evidence=evidence,
                truncated=truncated,
            )
        return ToolResult(ok=True, output=text, data=data, evidence=evidence, truncated=truncated)

    def _compose(self, out: _Outcome) -> tuple[str, bool]:
        """stdout, then stderr under a label, cut to the output limit with one marker."""
        text = out.stdout.kept.decode("utf-8", errors="replace")
        if out.stderr.total:
            sep = "" if not text or text.endswith("\n") else "\n"
            text += sep + "[stderr]\n" + out.stderr.kept.decode("utf-8", errors="replace")
        unread = (out.stdout.total - len(out.stdout.kept)) + (
            out.stderr.total - len(out.stderr.kept)
        )
        return self._clip(text, already_dropped=unread)


def _fill(word: str, args: Mapping[str, Any], argv: list[str]) -> str:
    """One undo word with its ``{argv.N}`` / ``{args.NAME}`` placeholders filled."""

    def value(match: re.Match[str]) -> str:
        field_ = _UNDO_FIELD.fullmatch(match.group(1))
        assert field_ is not None  # checked when the template was read
        name, index = field_.groups()
        if index is not None:
            if int(index) >= len(argv):
                raise ScopeViolation(
                    f"undo needs word {index} of the command, which has {len(argv)} words"
                )
            return argv[int(index)]
        if name not in args:
            raise ScopeViolation(f"undo needs args.{name}, which the call did not have")
        return str(args[name])

    return _PLACEHOLDER.sub(value, word)


def _parse_rules(name: str, commands: dict[str, Any]) -> dict[str, CommandRule]:
    if not commands:
        raise ToolConfigError(f"tool {name!r}: shell needs at least one entry in scope.commands")
    rules: dict[str, CommandRule] = {}
    for cmd, spec in commands.items():
        if "/" in cmd or not _NAME.fullmatch(cmd):
            raise ToolConfigError(f"tool {name!r}: command {cmd!r} must be a bare command name")
        try:
            rules[cmd] = (
                spec if isinstance(spec, CommandRule) else CommandRule.model_validate(spec or {})
            )
        except ValidationError as exc:
            raise ToolConfigError(f"tool {name!r}: command {cmd!r}: {exc}") from None
    return rules


def _working_dir(name: str, cwd: Path | None, roots: list[Path]) -> Path:
    """The process cwd: declared, else the first root; it must lie inside the roots."""
    if cwd is None:
        if not roots:
            raise ToolConfigError(f"tool {name!r}: shell needs scope.cwd or scope.roots")
        return roots[0]
    resolved = Path(cwd).resolve(strict=False)
    if roots and not any(resolved.is_relative_to(r) for r in roots):
        raise ToolConfigError(f"tool {name!r}: scope.cwd {resolved} is outside scope.roots")
    return resolved


def _split(command: str) -> list[str]:
    for ch in command:
        if unicodedata.category(ch) == "Cc" and ch not in " \t":
            raise ScopeViolation(
                f"command contains control character U+{ord(ch):04X}",
                failure_class="invalid_arguments",
            )
    try:
        argv = shlex.split(command, posix=True)
    except ValueError as exc:
        raise ScopeViolation(
            f"command does not parse: {exc}", failure_class="invalid_arguments"
        ) from None
    if not argv:
        raise ScopeViolation("command is empty", failure_class="invalid_arguments")
    return argv


def _run_bounded(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout_s: float,
    drain_limit: int,
    keep: int,
) -> _Outcome:
    """Run ``argv`` in a new session, reading output incrementally within fixed bounds.

    Reads until the leader exits (waiting for it if its pipes close first), the deadline
    passes, or output exceeds ``drain_limit``. Then the whole process group is killed
    (background children too) and the pipes are drained briefly. The leader is reaped
    only after the kill, so its pid cannot have been reused as the group id we signal.
    """
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Capture(keep), _Capture(keep)
    caps = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    pidfd = os.pidfd_open(proc.pid)
    timed_out = flooded = False
    try:
        with selectors.DefaultSelector() as sel:
            for fd in (*caps, pidfd):
                sel.register(fd, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout_s
            timed_out, flooded = _pump(sel, caps, deadline, drain_limit, stop_on_exit=True)
            if not (timed_out or flooded):  # pipes closed: give the leader time to exit
                timed_out = not _wait_readable(pidfd, deadline)
            _kill_group(proc.pid)
            _pump(sel, caps, time.monotonic() + _DRAIN_AFTER_KILL_S, drain_limit)
    finally:
        _kill_group(proc.pid)
        os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
        exit_code = proc.wait()
    return _Outcome(exit_code, out, err, timed_out, flooded)


def _pump(
    sel: selectors.BaseSelector,
    caps: dict[int, _Capture],
    deadline: float,
    drain_limit: int,
    *,
    stop_on_exit: bool = False,
) -> tuple[bool, bool]:
    """Read ready pipes until both close, the deadline passes, output floods, or (with
    ``stop_on_exit``) the leader exits. Returns ``(timed_out, flooded)``.

    The only registered fd that is not a pipe is the leader's pidfd, readable once it exits.
    """
    while any(key.fd in caps for key in sel.get_map().values()):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True, False
        for key, _ in sel.select(remaining):
            if key.fd not in caps:
                sel.unregister(key.fd)
                if stop_on_exit:
                    return False, False
                continue
            chunk = os.read(key.fd, _CHUNK)
            if not chunk:
                sel.unregister(key.fd)
                continue
            caps[key.fd].feed(chunk)
            if sum(c.total for c in caps.values()) > drain_limit:
                return False, True
    return False, False


def _wait_readable(fd: int, deadline: float) -> bool:
    """Wait until ``fd`` (a pidfd: the process exited) is readable or the deadline passes."""
    ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
    return bool(ready)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
