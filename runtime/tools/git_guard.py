"""git_guard: git never runs a program the repository configures, nor leaves the roots.

An agent that may write inside a work tree may write ``.git/config`` and
``.gitattributes``, and git obeys both: ``diff.external``, a textconv or filter driver,
``core.fsmonitor``, a hook, a pager, an alias, ``gpg.program`` all run a program the agent
chose, on commands as harmless-looking as ``git status``; ``core.worktree``, a gitfile,
``commondir`` or ``objects/info/alternates`` make git read folders outside the roots.

Three layers, because no single one holds on its own:

1. **Isolation** (:func:`git_environment`, part of every git process's environment). No
   system, global or XDG config; ``GIT_CONFIG_COUNT`` overrides, which outrank the
   repository's config, switch off every *singleton* key whose override was tested to
   neutralize it (fsmonitor, hooks, pager, signature checks, credential helpers, implicit
   bare repositories); editors, askpass and every transport (``GIT_ALLOW_PROTOCOL``) are
   off, so no fetch, lazy fetch or remote helper runs. These hold even if the repository
   changes after the check, and inside submodules (git passes them on).
2. **Refusal** (:func:`vet_repository`, right before git runs). Keys that name a program
   per driver (``diff.<driver>.textconv``, ``filter.<driver>.clean``...), aliases and
   includes cannot be overridden from outside, and overriding ``diff.external`` only makes
   ``git diff`` fail; so a repository whose config sets any key in :data:`REFUSED_KEYS` is
   refused, naming the key. Config is read by git's own parser (``git config --file F
   --list --no-includes -z``), never by an INI parser of ours: an attacker would exploit
   any difference between the two. The repository, its common dir, object store and
   alternates, and every work tree they name must lie inside the roots. Submodules git
   would run itself in (gitlinks in the index that are checked out) are vetted the same
   way: git passes layer 1 on to them, but not a refusal.
3. **Ceilings** (``GIT_CEILING_DIRECTORIES`` = the roots' parents): repository discovery
   never climbs out of the roots, so a workspace inside another checkout does not pick up
   that checkout's ``.git``; the check walks exactly that far too, and vets every ``.git``
   it meets (a superset of the one git uses, so a ``.git`` git skips cannot hide another).

Deliberately not covered: keys that only *read* a file outside the roots
(``core.excludesFile``, ``core.attributesFile``, ``mailmap.file``, ``diff.orderFile``,
``blame.ignoreRevsFile``, ``commit.template``); symlinks planted deeper inside a git dir
(``objects/pack``, a ref): govrun's fs tools cannot create symlinks; a submodule reached
only through ``--submodule=diff`` on history where it is not checked out; flags an
operator allowlists that run the system's gpg (``--show-signature``, a ``%G`` format);
and something else (another process, an MCP server) rewriting the repository between the
check and git's read of it: layer 1 still holds then, a key only layer 2 covers does not.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from govrun.runtime.tools.base import ScopeViolation, describe_roots, portable

GIT_PATH = "/usr/local/bin:/usr/bin:/bin"
"""Where git is looked up: ``shell.FIXED_PATH`` (not imported, as shell imports this)."""

OVERRIDES: tuple[tuple[str, str], ...] = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", os.devnull),
    ("core.pager", "cat"),
    ("log.showSignature", "false"),
    ("credential.helper", ""),  # the empty helper empties the list of helpers
    ("safe.bareRepository", "explicit"),  # a folder planted to look like a bare repository
)
"""Config overrides in every git environment; each was tested to neutralize its key when
the repository sets it (``tests/test_tools_git.py``). ``diff.external`` is not here: an
empty override makes ``git diff`` fail instead of switching it off."""

_RUNS = "runs a program"
_GPG = "makes git run gpg"
_FORMAT = "can make git run gpg (a %G placeholder)"
_ALIAS = "can expand to any git subcommand or shell command"
_INCLUDE = "reads configuration from another file"
_FETCH = "lets git reach another repository"
_SUBMODULES = "makes log and show run git diff inside submodules"
_BANG = "runs a shell command (a value starting with '!')"

REFUSED_KEYS: dict[str, str] = {
    # Programs: named by the repository and run by git (git-config(1), git 2.39).
    "core.fsmonitor": _RUNS,
    "core.hookspath": _RUNS,
    "core.pager": _RUNS,
    "core.editor": _RUNS,
    "core.askpass": _RUNS,
    "core.sshcommand": _RUNS,
    "core.gitproxy": _RUNS,
    "core.alternaterefscommand": _RUNS,
    "pager.*": _RUNS,
    "sequence.editor": _RUNS,
    "diff.external": _RUNS,
    "diff.<driver>.textconv": _RUNS,
    "diff.<driver>.command": _RUNS,
    "diff.tool": _RUNS,
    "diff.guitool": _RUNS,
    "difftool.*": _RUNS,
    "merge.tool": _RUNS,
    "merge.guitool": _RUNS,
    "merge.<driver>.driver": _RUNS,
    "mergetool.*": _RUNS,
    "filter.*": _RUNS,
    "credential.*": _RUNS,
    "uploadpack.*": _RUNS,
    "remote.<name>.uploadpack": _RUNS,
    "remote.<name>.receivepack": _RUNS,
    "remote.<name>.vcs": _RUNS,
    "submodule.<name>.update": _BANG,  # checkout, rebase, merge, none are fine
    "tar.<format>.command": _RUNS,
    "interactive.difffilter": _RUNS,
    "imap.tunnel": _RUNS,
    "sendemail.*": _RUNS,
    "guitool.*": _RUNS,
    "man.*": _RUNS,
    "browser.*": _RUNS,
    "web.browser": _RUNS,
    "help.browser": _RUNS,
    "instaweb.*": _RUNS,
    # Signatures: verifying or signing runs gpg (or gpg.program).
    "gpg.*": _GPG,
    "log.showsignature": _GPG,
    "format.pretty": _FORMAT,
    "pretty.*": _FORMAT,
    "commit.gpgsign": _GPG,
    "tag.gpgsign": _GPG,
    "tag.forcesignannotated": _GPG,
    "push.gpgsign": _GPG,
    "merge.verifysignatures": _GPG,
    # Indirection: an alias bypasses the subcommand allowlist; an include brings keys in.
    "alias.*": _ALIAS,
    "include.*": _INCLUDE,
    "includeif.*": _INCLUDE,
    # Other repositories: transports are off in the environment, and stay refused here.
    "url.*": _FETCH,
    "protocol.*": _FETCH,
    "extensions.partialclone": _FETCH,
    "remote.<name>.promisor": _FETCH,
    # Submodules: the checked-out ones are vetted; this would reach ones that are not.
    "diff.submodule": _SUBMODULES,
}
"""Config keys that make git run a program or leave the vetted repository, in git's
notation: ``section.name``; ``section.<sub>.name`` for any subsection; ``section.*`` for
the whole section. Sections and names are lowercase, as ``git config --list`` prints them.
``core.worktree`` is checked by value instead (inside the roots), since git writes it into
every absorbed submodule's config."""

_TIMEOUT_S = 30.0
_MAX_ALTERNATES_DEPTH = 6  # git follows alternates 5 deep; one more is a superset


@dataclass(frozen=True)
class _Pattern:
    section: str
    subsection: Literal["none", "some", "any"]
    name: str | None  # None: any name

    @classmethod
    def parse(cls, spec: str) -> _Pattern:
        section, _, rest = spec.partition(".")
        if rest == "*":
            return cls(section, "any", None)
        if rest.startswith("<"):
            return cls(section, "some", rest.rpartition(".")[2])
        return cls(section, "none", rest)

    def matches(self, section: str, subsection: str | None, name: str) -> bool:
        if section != self.section or (self.name is not None and name != self.name):
            return False
        return self.subsection == "any" or (self.subsection == "some") == (subsection is not None)


_PATTERNS = tuple((_Pattern.parse(spec), reason) for spec, reason in REFUSED_KEYS.items())


def git_environment(roots: Sequence[Path]) -> dict[str, str]:
    """The git part of a tool's fixed environment (see the module docstring, layer 1)."""
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_OPTIONAL_LOCKS": "0",  # status does not write the index (no post-index-change)
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",  # empty: no askpass program, and none from core.askPass
        "GIT_EDITOR": ":",  # git's no-op editor, outranking core.editor
        "GIT_SEQUENCE_EDITOR": ":",
        "GIT_PAGER": "cat",
        "GIT_ALLOW_PROTOCOL": "",  # no transport at all: file, ssh, http, ext, helpers
        "GIT_CONFIG_COUNT": str(len(OVERRIDES)),
    }
    for i, (key, value) in enumerate(OVERRIDES):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    ceilings, _ = _ceilings([Path(r) for r in roots])
    if ceilings:
        env["GIT_CEILING_DIRECTORIES"] = os.pathsep.join(ceilings)
    return env


def vet_repository(cwd: Path, roots: Sequence[Path]) -> None:
    """Raise ``ScopeViolation`` if git run in ``cwd`` would use a repository configured to
    run programs or to reach outside ``roots`` (layers 2 and 3 of the module docstring).

    Run right before each git process: the repository is part of the world when git runs.
    """
    resolved = [Path(os.path.realpath(r)) for r in roots]
    _, lost = _ceilings(resolved)
    if lost:
        raise ScopeViolation(
            f"git: the folder above {portable(lost[0], resolved[0])} has {os.pathsep!r} in "
            "its path, which GIT_CEILING_DIRECTORIES cannot hold; govrun cannot keep git "
            "inside the root there"
        )
    git = shutil.which("git", path=GIT_PATH)
    if git is None:
        raise FileNotFoundError(f"command 'git' not found on {GIT_PATH}")
    _Vetter(resolved, git, git_environment(resolved)).discover(Path(os.path.realpath(cwd)))


def _ceilings(roots: Sequence[Path]) -> tuple[list[str], list[Path]]:
    """The roots' parents that lie inside no root (git would never climb past them), and
    the roots whose parent cannot be written into the colon-separated list."""
    ceilings: list[str] = []
    lost: list[Path] = []
    for root in roots:
        parent = root.parent
        if parent == root or any(parent.is_relative_to(r) for r in roots):
            continue
        if os.pathsep in str(parent):
            lost.append(root)
        elif str(parent) not in ceilings:
            ceilings.append(str(parent))
    return ceilings, lost


@dataclass
class _Vetter:
    roots: list[Path]
    git: str
    env: dict[str, str]
    seen: set[Path] = field(default_factory=set)

    def discover(self, cwd: Path) -> None:
        """Vet every ``.git`` from ``cwd`` up to the outermost root holding it."""
        top = self._top(cwd)
        folder = cwd
        while True:
            self._dot_git(folder)
            if folder == top or folder.parent == folder:
                return
            folder = folder.parent

    def _top(self, cwd: Path) -> Path:
        if not self.roots:
            return Path(cwd.anchor)
        holding = [r for r in self.roots if cwd.is_relative_to(r)]
        if not holding:
            raise ScopeViolation(f"git: {cwd} is outside {describe_roots(self.roots)}")
        return min(holding, key=lambda r: len(r.parts))

    def _dot_git(self, worktree: Path) -> None:
        """Vet the repository ``worktree/.git`` names, as git reads it: a folder, or a
        gitfile ``gitdir: PATH``. Anything else git skips (and so do we)."""
        worktree = Path(os.path.realpath(worktree))  # a submodule path may hold ``..``
        dot_git = worktree / ".git"
        try:
            mode = os.stat(dot_git).st_mode
        except (OSError, ValueError):
            return
        if stat.S_ISDIR(mode):
            gitdir = self._inside(Path(os.path.realpath(dot_git)), dot_git, "the repository")
        elif stat.S_ISREG(mode):
            gitdir = self._inside(self._read_gitfile(dot_git), dot_git, "the repository")
        else:
            return
        self._repository(gitdir, self._inside(worktree, worktree, "the work tree"))

    def _repository(self, gitdir: Path, worktree: Path) -> None:
        if gitdir in self.seen:
            return
        self.seen.add(gitdir)
        common = gitdir
        if os.path.lexists(gitdir / "commondir"):
            target = self._read_path(gitdir / "commondir")
            common = self._inside(_resolve(gitdir, target), gitdir / "commondir", "common dir")
        objects = self._inside(
            Path(os.path.realpath(common / "objects")), common / "objects", "the object store"
        )
        self._alternates(objects, depth=0)
        worktrees = {worktree}
        names = ("config", "config.worktree")
        files = dict.fromkeys(d / n for d in (gitdir, common) for n in names)
        for config in files:
            if os.path.exists(config):  # git skips a missing (or dangling) config file
                worktrees |= self._config(config, bases=(gitdir, common))
        for top in worktrees:
            for path in self._gitlinks(gitdir, top):
                self._dot_git(top / path)

    def _config(self, config: Path, bases: tuple[Path, ...]) -> set[Path]:
        """Refuse a config file that sets a key in ``REFUSED_KEYS`` or a work tree outside
        the roots; return the work trees it names (their submodules are vetted too)."""
        if not self._is_regular(config):  # a fifo would hang git, and this check
            raise ScopeViolation(f"git: {self._show(config)} is not a regular file")
        code, out, err = self._git(
            ["config", "--file", str(config), "--list", "--no-includes", "-z"]
        )
        if code != 0:
            why = err.decode(errors="replace").strip() or f"exit {code}"
            raise ScopeViolation(f"git: cannot read {self._show(config)}: {why}")
        worktrees: set[Path] = set()
        for entry in out.split(b"\0"):
            if not entry:
                continue
            raw_key, _, raw_value = entry.partition(b"\n")
            key, value = os.fsdecode(raw_key), os.fsdecode(raw_value)
            reason = _refusal(key, value)
            if reason is not None:
                raise ScopeViolation(
                    f"git: {self._show(config)} sets {key}, which {reason}; govrun does not "
                    "run git in a repository configured to run programs or to leave its "
                    "root (remove the key)"
                )
            if key == "core.worktree":
                for base in bases:
                    where = _resolve(base, value)
                    worktrees.add(self._inside(where, config, "core.worktree"))
        return worktrees

    def _alternates(self, objects: Path, depth: int) -> None:
        """Every object store ``objects/info/alternates`` adds, recursively, stays inside.
        Lines are read as git reads them; a quoted line is refused rather than unquoted."""
        listing = objects / "info" / "alternates"
        if depth > _MAX_ALTERNATES_DEPTH or not os.path.lexists(listing):
            return
        data = self._read_regular(listing)
        for line in data.split(b"\n"):
            if not line or line.startswith(b"#"):
                continue
            if line.startswith(b'"'):
                raise ScopeViolation(f"git: {self._show(listing)} has a quoted path; remove it")
            joined = os.path.normpath(os.path.join(objects, os.fsdecode(line)))
            store = self._inside(Path(os.path.realpath(joined)), listing, "an alternate")
            self._alternates(store, depth + 1)

    def _gitlinks(self, gitdir: Path, worktree: Path) -> list[str]:
        """Submodule paths in the index: ``git status`` and ``git diff`` run git in each
        one that is checked out. If git cannot read the index, neither can they."""
        if not os.path.lexists(gitdir / "index") or not os.path.isdir(worktree):
            return []
        code, out, _ = self._git(
            ["ls-files", "--stage", "-z"],
            cwd=worktree,
            extra={"GIT_DIR": str(gitdir), "GIT_WORK_TREE": str(worktree)},
        )
        if code != 0:
            return []
        paths = []
        # Skip, cheaply, the common case: a six-digit mode (``%06o``) that is no gitlink.
        maybe = [e for e in out.split(b"\0") if e[6:7] != b" " or e.startswith(b"16")]
        for entry in maybe:
            meta, tab, path = entry.partition(b"\t")
            mode = meta.split(b" ", 1)[0]
            if tab and mode.isdigit() and int(mode, 8) & 0o170000 == 0o160000:
                paths.append(os.fsdecode(path))
        return paths

    def _git(
        self, args: list[str], *, cwd: Path | None = None, extra: dict[str, str] | None = None
    ) -> tuple[int, bytes, bytes]:
        """Run git; ``(exit code, stdout, stderr)``. A timer kills it when time runs out:
        ``subprocess.run(timeout=...)`` polls for the exit, adding a millisecond a call."""
        env = {"PATH": GIT_PATH, "LANG": "C.UTF-8", "HOME": os.devnull, **self.env}
        env.update(extra or {"GIT_DIR": os.devnull})  # no discovery: nothing but the file
        with subprocess.Popen(
            [self.git, *args],
            cwd=cwd or "/",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            killer = threading.Timer(_TIMEOUT_S, proc.kill)
            killer.start()
            try:
                out, err = proc.communicate()
            finally:
                killer.cancel()
        if killer.finished.is_set() and proc.returncode == -signal.SIGKILL:
            raise ScopeViolation(f"git: vetting the repository took over {_TIMEOUT_S}s")
        return proc.returncode, out, err

    def _read_gitfile(self, dot_git: Path) -> Path:
        """The folder a gitfile names, read as git 2.39 reads it (``read_gitfile_gently``):
        ``gitdir: `` then a path, trailing CR/LF dropped, relative to the gitfile's folder."""
        data = self._read_regular(dot_git)
        if not data.startswith(b"gitdir: "):
            raise ScopeViolation(f"git: {self._show(dot_git)} is not a valid gitfile")
        return _resolve(dot_git.parent, self._one_path(data[len(b"gitdir: ") :], dot_git))

    def _read_path(self, file: Path) -> str:
        """A one-path file such as ``commondir``, read as git reads it."""
        return self._one_path(self._read_regular(file), file)

    def _one_path(self, data: bytes, file: Path) -> str:
        data = data.rstrip(b"\r\n")
        if not data or b"\0" in data:  # git would cut the path at a NUL: refuse, not guess
            raise ScopeViolation(f"git: {self._show(file)} does not hold one path")
        return os.fsdecode(data)

    def _read_regular(self, file: Path) -> bytes:
        """A regular file's bytes; anything else (a fifo, a folder) is refused, not opened."""
        if not self._is_regular(file):
            raise ScopeViolation(f"git: {self._show(file)} is not a regular file")
        try:
            return file.read_bytes()
        except OSError as exc:
            raise ScopeViolation(f"git: cannot read {self._show(file)}: {exc.strerror}") from None

    def _is_regular(self, file: Path) -> bool:
        try:
            return stat.S_ISREG(os.stat(file).st_mode)
        except OSError:
            return False

    def _inside(self, path: Path, named_by: Path, what: str) -> Path:
        if self.roots and not any(path.is_relative_to(r) for r in self.roots):
            raise ScopeViolation(
                f"git: {self._show(named_by)} puts {what} at {self._show(path)}, outside "
                f"{describe_roots(self.roots)}; govrun does not run git there"
            )
        return path

    def _show(self, path: Path) -> str:
        return portable(path, self.roots[0]) if self.roots else str(path)


def _refusal(key: str, value: str) -> str | None:
    """Why ``key`` (as ``git config --list`` prints it) is refused, or None."""
    section, _, rest = key.partition(".")
    subsection, _, name = rest.rpartition(".")
    for pattern, reason in _PATTERNS:
        if pattern.matches(section, subsection or None, name):
            return None if reason is _BANG and not value.startswith("!") else reason
    return None


def _resolve(base: Path, value: str) -> Path:
    """A path git reads relative to ``base``, where the kernel will find it."""
    return Path(os.path.realpath(os.path.join(base, value)))
