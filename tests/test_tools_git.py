"""git through the shell tool runs isolated from config that runs programs.

Each test writes real configuration into a real repository, naming a program that leaves a
marker file outside the root when it runs, and runs git twice: as an unguarded tool would
(the program runs: the vector is live), then with ``git_environment(...)`` (it does not).
"""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runtime.tools import ToolResult, parse_arguments
from runtime.tools.git_guard import git_environment
from runtime.tools.shell import FIXED_PATH, ShellTool

SUBCOMMANDS = ["diff", "status", "log", "show", "log -p"]
RULE: dict[str, Any] = {"subcommands": ["diff", "status", "log", "show"], "flags": ["-p"]}
PLAIN_ENV = {
    "PATH": FIXED_PATH,
    "LANG": "C.UTF-8",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
"""Git as an unguarded tool would run it: no user config, nothing else."""
IDENTITY = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgSign=false"]


@dataclass
class World:
    """A root ``ws`` holding a real repository, and outside it: a program that writes
    ``ran`` when it runs, a hooks folder, a folder to point a work tree at, and another
    repository to point a gitdir, commondir or alternates at."""

    tmp: Path
    ws: Path
    prog: Path
    marker: Path
    hooks: Path
    elsewhere: Path
    other: Path
    other_commit: str

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return plain_git(cwd or self.ws, *args).stdout

    def append_config(self, text: str, repo_dir: Path | None = None) -> None:
        with open((repo_dir or self.ws / ".git") / "config", "a") as f:
            f.write(text)

    def fill(self, text: str) -> str:
        return text.format(
            prog=self.prog,
            hooks=self.hooks,
            elsewhere=self.elsewhere,
            other=self.other,
            other_commit=self.other_commit,
        )


def plain_git(
    cwd: Path, *args: str, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    env = env or {**PLAIN_ENV, "HOME": str(cwd)}
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, **kw
    )


def make_repo(path: Path, files: dict[str, str], message: str) -> str:
    path.mkdir(parents=True, exist_ok=True)
    plain_git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        (path / name).write_text(text)
    plain_git(path, "add", *files)
    done = plain_git(path, *IDENTITY, "commit", "-qm", message)
    assert done.returncode == 0, done.stderr
    return plain_git(path, "rev-parse", "HEAD").stdout.strip()


@pytest.fixture
def world(tmp_path: Path) -> World:
    marker = tmp_path / "ran"
    prog = tmp_path / "prog"
    prog.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\n')
    prog.chmod(0o755)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for hook in ("post-index-change", "pre-commit", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        (hooks / hook).chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "outside-secret.txt").write_text("SECRET\n")
    other = tmp_path / "other"
    other_commit = make_repo(other, {"o.txt": "other\n"}, "outside commit")
    ws = tmp_path / "ws"
    make_repo(ws, {"a.txt": "hello\n", "b.txt": "same\n"}, "first")
    (ws / "a.txt").write_text("hello\nagain\n")
    plain_git(ws, *IDENTITY, "commit", "-qam", "second")
    (ws / "a.txt").write_text("hello\nagain\nworld\n")
    return World(tmp_path, ws, prog, marker, hooks, elsewhere, other, other_commit)


def tool(world: World, rule: dict[str, Any] | None = None) -> ShellTool:
    return ShellTool(name="git", commands={"git": rule or RULE}, roots=[world.ws], timeout_s=20)


def run(shell: ShellTool, command: str) -> ToolResult:
    return shell.run(parse_arguments(shell, {"command": command}))


def make_stat_dirty(world: World) -> None:
    """b.txt keeps its content but not its mtime, so git re-reads it (through filters)."""
    st = os.stat(world.ws / "b.txt")
    os.utime(world.ws / "b.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def sign_head(world: World) -> None:
    """Point HEAD at a commit carrying a (bogus) signature, which log verifies with gpg."""
    tree = world.git("write-tree").strip()
    head = world.git("rev-parse", "HEAD").strip()
    body = (
        f"tree {tree}\nparent {head}\nauthor t <t@t> 1 +0000\ncommitter t <t@t> 1 +0000\n"
        "gpgsig -----BEGIN PGP SIGNATURE-----\n \n abc\n -----END PGP SIGNATURE-----\n\nsigned\n"
    )
    done = plain_git(world.ws, "hash-object", "-t", "commit", "-w", "--stdin", input=body)
    plain_git(world.ws, "update-ref", "HEAD", done.stdout.strip())


def config(text: str, attributes: str | None = None) -> Callable[[World], None]:
    def plant(world: World) -> None:
        world.append_config(world.fill(text))
        if attributes is not None:
            (world.ws / ".gitattributes").write_text(attributes + "\n")

    return plant


def signed(text: str) -> Callable[[World], None]:
    def plant(world: World) -> None:
        sign_head(world)
        config(text)(world)

    return plant


# --- the environment alone ---------------------------------------------------------------


def guarded_env(world: World) -> dict[str, str]:
    return {
        "PATH": FIXED_PATH,
        "LANG": "C.UTF-8",
        "HOME": str(world.ws),
        **git_environment([world.ws]),
    }


def edit(world: World) -> None:
    """A change to commit, and a file git must re-read."""
    with open(world.ws / "a.txt", "a") as f:
        f.write("more\n")
    make_stat_dirty(world)


def both(
    world: World,
    *args: str,
    tty: bool = False,
    prepare: Callable[[World], None] = edit,
    **kw: Any,
) -> tuple[bool, bool]:
    """Run git plain, then with the guarded environment: did the program run each time?"""
    ran = []
    for env in ({**PLAIN_ENV, "HOME": str(world.ws)}, guarded_env(world)):
        prepare(world)
        if tty:
            primary, secondary = pty.openpty()
            subprocess.run(
                ["git", *args],
                cwd=world.ws,
                env=env,
                stdout=secondary,
                stderr=secondary,
                stdin=subprocess.DEVNULL,
                check=False,
                timeout=20,
            )
            os.close(secondary)
            os.close(primary)
        else:
            plain_git(world.ws, *args, env=env, timeout=20, **kw)
        ran.append(world.marker.exists())
        world.marker.unlink(missing_ok=True)
    return ran[0], ran[1]


@pytest.mark.parametrize(
    ("setting", "command", "tty"),
    [
        ("[core]\n\tfsmonitor = {prog}\n", "status", False),
        ("[core]\n\tfsmonitor = {prog}\n", "diff", False),
        ("[core]\n\thooksPath = {hooks}\n", "status", False),
        ("[core]\n\tpager = {prog}\n", "log", True),
        ("[pager]\n\tdiff = {prog}\n", "diff", True),
    ],
    ids=["fsmonitor-status", "fsmonitor-diff", "hooksPath-status", "core.pager", "pager.diff"],
)
def test_environment_neutralizes_singleton_keys(
    world: World, setting: str, command: str, tty: bool
) -> None:
    world.append_config(world.fill(setting))
    assert both(world, command, tty=tty) == (True, False)


def test_environment_neutralizes_hooks_in_the_default_folder(world: World) -> None:
    for hook in world.hooks.iterdir():
        (world.ws / ".git" / "hooks" / hook.name).write_bytes(hook.read_bytes())
        (world.ws / ".git" / "hooks" / hook.name).chmod(0o755)
    assert both(world, "status") == (True, False)
    assert both(world, *IDENTITY, "commit", "-qam", "c") == (True, False)


def test_environment_neutralizes_signature_checks(world: World) -> None:
    signed("[log]\n\tshowSignature = true\n[gpg]\n\tprogram = {prog}\n")(world)
    assert both(world, "log") == (True, False)
    assert both(world, "show") == (True, False)


def test_environment_neutralizes_credential_helpers_and_askpass(world: World) -> None:
    world.append_config(world.fill("[credential]\n\thelper = {prog}\n[core]\n\taskPass = {prog}\n"))
    ask = "protocol=https\nhost=example.com\n\n"
    assert both(world, "credential", "fill", input=ask) == (True, False)


def test_environment_neutralizes_editors(world: World) -> None:
    world.append_config(world.fill("[core]\n\teditor = {prog}\n"))
    assert both(world, *IDENTITY, "commit", "-a") == (True, False)


def test_environment_neutralizes_the_sequence_editor(world: World) -> None:
    world.append_config(world.fill("[sequence]\n\teditor = {prog}\n"))

    def clean(world: World) -> None:
        edit(world)
        plain_git(world.ws, *IDENTITY, "commit", "-qam", "wip")

    assert both(world, *IDENTITY, "rebase", "-i", "HEAD~1", prepare=clean) == (True, False)


def test_environment_allows_no_transport(world: World) -> None:
    """Not ext::, not a remote helper, not even a local path: git reaches no other
    repository, so a lazy fetch or a submodule fetch cannot run anything either."""
    world.append_config(
        world.fill(
            '[protocol "ext"]\n\tallow = always\n[remote "origin"]\n\turl = ext::{prog} %S\n'
        )
    )
    assert both(world, "ls-remote", "origin") == (True, False)
    done = plain_git(world.ws, "ls-remote", str(world.other), env=guarded_env(world))
    assert done.returncode != 0 and "transport 'file' not allowed" in done.stderr


def test_environment_refuses_a_planted_bare_repository(world: World) -> None:
    """A folder made to look like a bare repository (HEAD, objects/, refs/, config) is
    not used implicitly: its config never counts."""
    bare = world.ws / "bare"
    plain_git(world.ws, "init", "-q", "--bare", str(bare))
    world.append_config(world.fill("[core]\n\tfsmonitor = {prog}\n"), repo_dir=bare)
    done = plain_git(bare, "status", env={**guarded_env(world), "HOME": str(bare)})
    assert "safe.bareRepository" in done.stderr
    assert not world.marker.exists()


# --- normal use --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("git diff", "+world"),
        ("git status", "modified:   a.txt"),
        ("git log", "second"),
        ("git show", "+again"),
        ("git log -p", "+hello"),
    ],
)
def test_a_clean_repository_still_works(world: World, command: str, expected: str) -> None:
    result = run(tool(world), command)
    assert result.ok, result
    assert expected in result.output
    assert not world.marker.exists()


def test_a_workspace_inside_another_checkout_does_not_see_it(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    make_repo(outer, {"top.txt": "x\n"}, "outer")
    with open(outer / ".git" / "config", "a") as f:
        f.write(f"[diff]\n\texternal = {tmp_path}/nothing\n")
    ws = outer / "ws"
    ws.mkdir()
    (ws / "f.txt").write_text("f\n")
    shell = ShellTool(name="git", commands={"git": RULE}, roots=[ws])
    result = run(shell, "git status")
    assert result.failure_class == "tool_error"  # git ran, and found no repository
    assert "not a git repository" in result.output
    assert "top.txt" not in result.output


def test_nested_roots_still_find_the_outer_roots_repository(world: World) -> None:
    """A root inside another root is no ceiling: git may use the outer root's repository."""
    inner = world.ws / "inner"
    inner.mkdir()
    shell = ShellTool(name="git", commands={"git": RULE}, roots=[world.ws, inner], cwd=inner)
    assert run(shell, "git log").ok
