"""git through the shell tool never runs a program the repository configures.

Every vector writes real configuration into a real repository, naming a program that
leaves a marker file outside the root when it runs. Each vector is first shown to be live
(plain git runs the program), then govrun's git is shown to refuse it, naming the key, with
the marker never written. A second group runs git directly with only
``git_environment(...)`` to show the overrides hold on their own, where a refusal could be
raced.
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

from govrun.runtime.tools import ToolResult, git_guard, parse_arguments
from govrun.runtime.tools.git_guard import GIT_PATH, REFUSED_KEYS, _refusal, git_environment
from govrun.runtime.tools.shell import FIXED_PATH, ShellTool

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


# --- the vectors -------------------------------------------------------------------------


@dataclass(frozen=True)
class Vector:
    """One way a repository makes git run a program or leave the root."""

    name: str
    plant: Callable[[World], None]
    names: str  # what the refusal must name
    live: str | None  # a plain git command that the vector makes run the program


def include(where: str, directive: str) -> Callable[[World], None]:
    def plant(world: World) -> None:
        file = (world.ws if where == "inside" else world.tmp) / "extra.cfg"
        file.write_text(world.fill("[diff]\n\texternal = {prog}\n"))
        world.append_config(f"[{directive}]\n\tpath = {file}\n")

    return plant


def gitfile_outside(world: World) -> None:
    subprocess.run(["rm", "-rf", str(world.ws / ".git")], check=True)
    (world.ws / ".git").write_text(f"gitdir: {world.other / '.git'}\n")


def commondir_outside(world: World) -> None:
    (world.ws / ".git" / "commondir").write_text(f"{world.other / '.git'}\n")


def dot_git_symlink_outside(world: World) -> None:
    subprocess.run(["rm", "-rf", str(world.ws / ".git")], check=True)
    (world.ws / ".git").symlink_to(world.other / ".git")


def objects_symlink_outside(world: World) -> None:
    subprocess.run(["rm", "-rf", str(world.ws / ".git" / "objects")], check=True)
    (world.ws / ".git" / "objects").symlink_to(world.other / ".git" / "objects")


def alternates_outside(world: World) -> None:
    (world.ws / ".git" / "objects" / "info" / "alternates").write_text(
        f"{world.other / '.git' / 'objects'}\n"
    )


VECTORS = [
    Vector("diff.external", config("[diff]\n\texternal = {prog}\n"), "diff.external", "diff"),
    Vector(
        "textconv",
        config('[diff "drv"]\n\ttextconv = {prog}\n', "* diff=drv"),
        "diff.drv.textconv",
        "log -p",
    ),
    Vector(
        "diff driver command",
        config('[diff "drv"]\n\tcommand = {prog}\n', "* diff=drv"),
        "diff.drv.command",
        "diff",
    ),
    Vector(
        "filter clean",
        config('[filter "drv"]\n\tclean = {prog}\n', "* filter=drv"),
        "filter.drv.clean",
        "status",
    ),
    Vector(
        "filter smudge",
        config('[filter "drv"]\n\tsmudge = {prog}\n', "* filter=drv"),
        "filter.drv.smudge",
        "checkout -- a.txt",
    ),
    Vector(
        "filter process",
        config('[filter "drv"]\n\tprocess = {prog}\n', "* filter=drv"),
        "filter.drv.process",
        "diff",
    ),
    Vector("core.pager", config("[core]\n\tpager = {prog}\n"), "core.pager", None),
    Vector("pager.diff", config("[pager]\n\tdiff = {prog}\n"), "pager.diff", None),
    Vector("core.fsmonitor", config("[core]\n\tfsmonitor = {prog}\n"), "core.fsmonitor", "status"),
    Vector("core.hooksPath", config("[core]\n\thooksPath = {hooks}\n"), "core.hookspath", "status"),
    Vector(
        "core.worktree outside",
        config("[core]\n\tworktree = {elsewhere}\n"),
        "core.worktree at ../elsewhere",
        None,
    ),
    Vector("include inside", include("inside", "include"), "include.path", "diff"),
    Vector("include outside", include("outside", "include"), "include.path", "diff"),
    Vector(
        "includeIf", include("outside", 'includeIf "gitdir:/"'), "includeif.gitdir:/.path", "diff"
    ),
    Vector("alias", config("[alias]\n\tst = !{prog}\n"), "alias.st", "st"),
    Vector(
        "log.showSignature",
        signed("[log]\n\tshowSignature = true\n[gpg]\n\tprogram = {prog}\n"),
        "log.showsignature",
        "log",
    ),
    Vector("gpg.program", signed("[gpg]\n\tprogram = {prog}\n"), "gpg.program", None),
    Vector(
        "odd syntax",  # what a hand-written INI reader would misread, git does not
        config('[DIFF "drv"]\n\tTextConv = \\\n"{prog}"\n', "* diff=drv"),
        "diff.drv.textconv",
        "diff",
    ),
    Vector(
        "old subsection syntax",
        config("[diff.Drv]\n\ttextconv = {prog}\n", "* diff=drv"),
        "diff.drv.textconv",
        "diff",
    ),
    Vector(
        "credential.helper", config("[credential]\n\thelper = {prog}\n"), "credential.helper", None
    ),
    Vector("core.sshCommand", config("[core]\n\tsshCommand = {prog}\n"), "core.sshcommand", None),
    Vector("url insteadOf", config('[url "ext::{prog}"]\n\tinsteadOf = x:\n'), ".insteadof", None),
    Vector("gitfile outside", gitfile_outside, ".git puts the repository at ../other/.git", "log"),
    Vector("commondir outside", commondir_outside, "commondir puts common dir at", "log"),
    Vector("dot-git symlink outside", dot_git_symlink_outside, "../other/.git", "log"),
    Vector(
        "objects symlink outside",
        objects_symlink_outside,
        "puts the object store at ../other/.git/objects",
        "show {other_commit}",
    ),
    Vector(
        "alternates outside",
        alternates_outside,
        "alternates puts an alternate at ../other/.git/objects",
        "show {other_commit}",
    ),
]


def leaks(world: World, output: str) -> bool:
    """The program ran, or git showed something from outside the root."""
    outside = ("outside-secret", "outside commit", "o.txt")
    return world.marker.exists() or any(s in output for s in outside)


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.live], ids=lambda v: v.name)
def test_vector_is_live_without_govrun(world: World, vector: Vector) -> None:
    """Each vector really makes plain git run the program (or read outside the root), so
    the refusal below is not vacuous."""
    vector.plant(world)
    make_stat_dirty(world)
    assert vector.live is not None
    done = plain_git(world.ws, *world.fill(vector.live).split())
    assert leaks(world, done.stdout + done.stderr), (done.stdout, done.stderr)


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector_is_refused_and_nothing_runs(world: World, vector: Vector, subcommand: str) -> None:
    vector.plant(world)
    make_stat_dirty(world)
    result = run(tool(world), f"git {subcommand}")
    assert not result.ok and result.failure_class == "policy_denied", result
    assert vector.names in (result.error or ""), result.error
    assert result.evidence == {}  # git never started
    assert not leaks(world, result.output)


def test_alias_is_refused_when_subcommands_are_unrestricted(world: World) -> None:
    """With no subcommand list, `git st` would be the alias: refused before git runs."""
    world.append_config(world.fill("[alias]\n\tst = !{prog}\n"))
    result = run(tool(world, {"flags": []}), "git st")
    assert result.failure_class == "policy_denied" and "alias.st" in (result.error or "")
    assert not world.marker.exists()


def test_core_worktree_outside_never_lists_the_outside_folder(world: World) -> None:
    world.append_config(world.fill("[core]\n\tworktree = {elsewhere}\n"))
    assert "outside-secret" in world.git("status", "--porcelain", "-uall")  # live
    result = run(tool(world), "git status")
    assert "outside-secret" not in result.output + (result.error or "")
    assert "core.worktree" in (result.error or "")


# --- submodules, worktrees and other shapes of repository --------------------------------


def test_a_repository_with_a_submodule_still_works(world: World) -> None:
    """git writes core.worktree into an absorbed submodule's config; inside the root it
    is allowed, and the submodule's own config is vetted."""
    add_submodule(world)
    for command in ("git status", "git diff", "git log"):
        result = run(tool(world), command)
        assert result.ok, result
    assert "add sub" in run(tool(world), "git log").output


def add_submodule(world: World) -> Path:
    done = plain_git(
        world.ws,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "-q",
        "add",
        str(world.other),
        "sub",
    )
    assert done.returncode == 0, done.stderr
    plain_git(world.ws, *IDENTITY, "commit", "-qm", "add sub")
    return world.ws / ".git" / "modules" / "sub"


def test_a_submodule_configured_to_run_programs_is_refused(world: World) -> None:
    """`git status` runs `git status` inside each checked-out submodule: its config counts."""
    module = add_submodule(world)
    world.append_config(world.fill('[filter "drv"]\n\tclean = {prog}\n'), repo_dir=module)
    (world.ws / "sub" / ".gitattributes").write_text("* filter=drv\n")
    st = os.stat(world.ws / "sub" / "o.txt")
    os.utime(world.ws / "sub" / "o.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    env = {**PLAIN_ENV, "HOME": str(world.ws), **git_environment([world.ws])}
    plain_git(world.ws, "status", env=env)  # the environment alone does not stop this one
    assert world.marker.exists()
    world.marker.unlink()
    for subcommand in ("status", "diff"):
        result = run(tool(world), f"git {subcommand}")
        assert result.failure_class == "policy_denied"
        assert ".git/modules/sub/config sets filter.drv.clean" in (result.error or "")
    assert not world.marker.exists()


def test_an_invalid_dot_git_does_not_hide_the_repository_above_it(world: World) -> None:
    """git skips a `.git` folder that is no repository and climbs on; so does the check."""
    world.append_config(world.fill("[diff]\n\texternal = {prog}\n"))
    sub = world.ws / "sub"
    (sub / ".git").mkdir(parents=True)
    (sub / "f.txt").write_text("f\n")
    shell = ShellTool(name="git", commands={"git": RULE}, roots=[world.ws], cwd=sub)
    result = run(shell, "git diff")
    assert result.failure_class == "policy_denied" and "diff.external" in (result.error or "")
    assert not world.marker.exists()


def test_a_linked_worktree_inside_the_root_works(world: World) -> None:
    plain_git(world.ws, "worktree", "add", "-q", str(world.ws / "wt"), "HEAD")
    shell = ShellTool(name="git", commands={"git": RULE}, roots=[world.ws], cwd=world.ws / "wt")
    assert "second" in run(shell, "git log").output
    world.append_config(world.fill('[filter "drv"]\n\tclean = {prog}\n'))  # the common config
    assert "filter.drv.clean" in (run(shell, "git status").error or "")


def test_an_unconfined_tool_still_refuses(world: World) -> None:
    world.append_config(world.fill("[diff]\n\texternal = {prog}\n"))
    shell = ShellTool(name="git", commands={"git": RULE}, cwd=world.ws)
    assert "diff.external" in (run(shell, "git diff").error or "")
    assert not world.marker.exists()


def test_a_root_the_ceiling_cannot_name_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "a:b" / "ws"
    make_repo(ws, {"f.txt": "f\n"}, "first")
    assert "GIT_CEILING_DIRECTORIES" not in git_environment([ws])
    result = run(ShellTool(name="git", commands={"git": RULE}, roots=[ws]), "git status")
    assert result.failure_class == "policy_denied" and "GIT_CEILING" in (result.error or "")


# --- the key table -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "refused"),
    [
        ("diff.external", True),
        ("diff.drv.textconv", True),
        ("diff.a.b.textconv", True),
        ("diff.drv.xfuncname", False),
        ("diff.renames", False),
        ("filter.lfs.required", True),
        ("pager.log", True),
        ("remote.origin.url", False),
        ("remote.origin.vcs", True),
        ("remote.a.b.uploadpack", True),
        ("submodule.sub.update=!make", True),
        ("submodule.sub.update=rebase", False),
        ("submodule.sub.url", False),
        ("include.path", True),
        ("includeif.gitdir:/x/.path", True),
        ("url.https://x.example/.insteadof", True),
        ("core.worktree", False),  # checked by value
        ("core.filemode", False),
        ("user.name", False),
        ("branch.main.remote", False),
    ],
)
def test_refused_keys_match_as_git_lists_them(key: str, refused: bool) -> None:
    key, _, value = key.partition("=")
    assert (_refusal(key, value or "x") is not None) == refused


def test_refused_keys_are_written_as_git_lists_them() -> None:
    for spec in REFUSED_KEYS:
        section, name = spec.partition(".")[0], spec.rpartition(".")[2]
        assert section == section.lower() and name == name.lower(), spec


def test_git_is_found_where_the_shell_tool_finds_it() -> None:
    assert GIT_PATH == FIXED_PATH


def test_a_git_that_hangs_while_vetting_is_killed_and_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index that is a fifo blocks git on open: the check gives up, and refuses."""
    monkeypatch.setattr(git_guard, "_TIMEOUT_S", 0.5)
    (world.ws / ".git" / "index").unlink()
    os.mkfifo(world.ws / ".git" / "index")
    result = run(tool(world), "git status")
    assert result.failure_class == "policy_denied" and "took over 0.5s" in (result.error or "")
