"""shell: denied command lines never execute; allowed ones run bounded and confined.

Every attack test asserts the side effect did not happen (``pwned`` does not exist),
not just the decision.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from govrun.runtime.tools import ScopeViolation, Tool, ToolConfigError, ToolResult, parse_arguments
from govrun.runtime.tools.shell import FIXED_PATH, ShellTool

COMMANDS: dict[str, Any] = {
    "ls": {"flags": ["-l", "-a", "-1", "--hide"]},
    "echo": {},
    "cat": {},
    "printenv": {},
    "seq": {},
    "yes": {},
    "sleep": {},
    "touch": {"max_args": 1},
    "find": {"flags": ["-name", "-type", "-e", "-x", "-c"]},
    "git": {
        "subcommands": ["status", "log", "diff"],
        "flags": ["--oneline", "--stat", "-n"],
        "max_args": 2,
    },
}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("alpha\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("SECRET")
    (ws / "link_out").symlink_to(tmp_path / "outside", target_is_directory=True)
    return ws


def sh(ws: Path, **kw: Any) -> ShellTool:
    kw.setdefault("commands", COMMANDS)
    kw.setdefault("roots", [ws])
    kw.setdefault("timeout_s", 10)
    return ShellTool(name="sh", **kw)


def run(tool: Tool, command: str) -> ToolResult:
    return tool.run(parse_arguments(tool, {"command": command}))


def pwned_anywhere(ws: Path) -> list[Path]:
    return [p for p in ws.parent.rglob("*pwned*")]


def assert_denied(tool: ShellTool, command: str, ws: Path, *, why: str = "") -> ToolResult:
    with pytest.raises(ScopeViolation) as exc:
        tool.check(parse_arguments(tool, {"command": command}))
    assert why in exc.value.message
    result = run(tool, command)
    assert not result.ok and result.failure_class == exc.value.failure_class
    assert result.evidence == {}  # nothing ran, so there is nothing to show
    assert pwned_anywhere(ws) == []
    return result


# --- normal operation -------------------------------------------------------------------


def test_allowed_command_runs_with_evidence(ws: Path) -> None:
    r = run(sh(ws), "cat a.txt")
    assert r.ok and r.output == "alpha\n"
    assert r.data == {"exit_code": 0}
    ev = r.evidence
    assert ev["argv"] == ["cat", "a.txt"] and ev["exit_code"] == 0
    assert ev["stdout_sha256"] == hashlib.sha256(b"alpha\n").hexdigest()
    assert ev["executable"] in ("/usr/bin/cat", "/bin/cat") and ev["cwd"] == str(ws)


def test_listed_and_combined_flags_are_allowed(ws: Path) -> None:
    for cmd in ("ls -l", "ls -la", "ls -a -l", "ls --hide=a.txt", "ls -1 -- a.txt", "cat -"):
        assert run(sh(ws), cmd).ok, cmd


def test_nonzero_exit_is_a_tool_error_with_labelled_stderr(ws: Path) -> None:
    r = run(sh(ws), "cat missing.txt")
    assert not r.ok and r.failure_class == "tool_error"
    assert r.data["exit_code"] == 1 and r.evidence["exit_code"] == 1
    assert r.output.startswith("[stderr]\n") and "missing.txt" in r.output


def test_environment_is_minimal_and_fixed(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVRUN_TEST_SECRET", "hunter2")
    r = run(sh(ws), "printenv")
    env = dict(line.split("=", 1) for line in r.output.splitlines())
    assert "GOVRUN_TEST_SECRET" not in env and "hunter2" not in r.output
    assert env["PATH"] == FIXED_PATH and env["LANG"] == "C.UTF-8" and env["HOME"] == str(ws)


def test_commands_are_looked_up_on_the_fixed_path_not_the_callers(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = ws / "cat"
    fake.write_text("#!/bin/sh\ntouch pwned\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{ws}:{os.environ['PATH']}")
    r = run(sh(ws), "cat a.txt")
    assert r.ok and r.evidence["executable"] != str(fake)
    assert pwned_anywhere(ws) == []


def test_git_subcommands_run(ws: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    r = run(sh(ws), "git status")
    assert r.ok and "branch" in r.output.lower()


def test_repo_config_fsmonitor_does_not_run_on_git_status(ws: Path) -> None:
    """An agent that can write .git/config must not get code execution via `git status`."""
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    subprocess.run(["git", "add", "a.txt"], cwd=ws, check=True)
    subprocess.run(["git", "config", "core.fsmonitor", "touch pwned; false"], cwd=ws, check=True)
    r = run(sh(ws), "git status")  # refused, naming the key (tests/test_tools_git.py)
    assert r.failure_class == "policy_denied" and "core.fsmonitor" in (r.error or "")
    assert pwned_anywhere(ws) == []


# --- shell metacharacters are just characters --------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "ls && touch pwned",
        "ls || touch pwned",
        "ls | touch pwned",
        "ls & touch pwned",
        "echo $(touch pwned)",
        "echo `touch pwned`",
        "echo hi > pwned",
        "echo hi ';' touch pwned",
        "echo ${IFS}touch${IFS}pwned",
    ],
)
def test_metacharacters_never_reach_a_shell(ws: Path, command: str) -> None:
    r = run(sh(ws), command)
    assert pwned_anywhere(ws) == []
    if "$" in command or "`" in command:  # a shell would expand it: refused, not passed on
        assert r.failure_class == "invalid_arguments" and "shell expansion" in (r.error or "")
    elif command.startswith("echo"):
        assert r.ok and "pwned" in r.output  # printed literally, not executed


@pytest.mark.parametrize(
    "command",
    ["ls; touch pwned", "ls;touch pwned", "touch pwned;", "$(touch pwned)", "`touch pwned`"],
)
def test_metacharacters_in_the_command_name_are_denied(ws: Path, command: str) -> None:
    tool = sh(ws, commands={k: v for k, v in COMMANDS.items() if k != "touch"})
    assert_denied(tool, command, ws)


def test_newlines_and_control_characters_are_invalid(ws: Path) -> None:
    r = assert_denied(sh(ws), "ls\ntouch pwned", ws)
    assert r.failure_class == "invalid_arguments"
    assert assert_denied(sh(ws), "ls\x00", ws).failure_class == "invalid_arguments"


def test_unparseable_command_is_invalid(ws: Path) -> None:
    assert assert_denied(sh(ws), "echo 'unterminated", ws).failure_class == "invalid_arguments"
    assert assert_denied(sh(ws), "   ", ws).failure_class == "invalid_arguments"


# --- allowlists -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("rm -rf .", "'rm' is not allowed"),
        ("/bin/ls", "bare command name"),
        ("./ls", "bare command name"),
        ("../../bin/touch pwned", "bare command name"),
        ("ls -R", "flag '-R'"),
        ("ls -lR", "flag '-lR'"),
        ("ls --all", "flag '--all'"),
        ("ls --color=always", "flag '--color'"),
        ("git push", "subcommand 'push'"),
        ("git --oneline", "subcommand none"),
        ("git log a b c", "at most 2"),
        ("touch a b", "at most 1"),
    ],
)
def test_unlisted_commands_flags_and_subcommands_are_denied(
    ws: Path, command: str, why: str
) -> None:
    before = sorted(ws.iterdir())
    assert_denied(sh(ws), command, ws, why=why)
    assert sorted(ws.iterdir()) == before


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("env touch pwned", "runs other commands"),
        ("timeout 5 touch pwned", "runs other commands"),
        ("nice touch pwned", "runs other commands"),
        ("xargs touch", "runs other commands"),
        ("sh -c 'touch pwned'", "runs other commands"),
        ("bash -c 'touch pwned'", "runs other commands"),
        ('python3 -c \'open("pwned","w")\'', "runs other commands"),
        ("busybox touch pwned", "runs other commands"),
        ("sudo touch pwned", "runs other commands"),
        ("find . -exec touch pwned ;", "flag '-exec'"),
        ("find . -execdir touch pwned ;", "flag '-execdir'"),
        ("find . -delete", "flag '-delete'"),
        ("git -c core.pager=touch log", "flag '-c'"),
        ("git --config-env=core.pager=X log", "flag '--config-env'"),
        ("git --exec-path=. log", "flag '--exec-path'"),
        ("git -C .. status", "flag '-C'"),
    ],
)
def test_wrappers_and_code_running_flags_are_denied(ws: Path, command: str, why: str) -> None:
    r = assert_denied(sh(ws), command, ws, why=why)
    if "flag" in why:
        assert "can run code" in r.error


def test_exec_is_not_accepted_as_combined_short_flags(ws: Path) -> None:
    """find allows -e, -x and -c here, yet ``-exec`` must not pass as ``-e -x -e -c``."""
    assert_denied(sh(ws), "find . -exec touch pwned ;", ws, why="-exec")


def test_explicitly_listed_wrapper_is_allowed(ws: Path) -> None:
    tool = sh(ws, commands={"env": {}})
    assert run(tool, "env").ok


def test_double_dash_does_not_switch_off_any_check(ws: Path) -> None:
    """GNU find executes `find -- . -exec cmd ;`, so flags after `--` are still vetted."""
    assert run(sh(ws), "ls -l -- a.txt").ok
    assert_denied(sh(ws), "find -- . -exec touch pwned ;", ws, why="-exec")
    assert_denied(sh(ws), "ls -- -R", ws, why="-R")
    assert_denied(sh(ws), "cat -- ../outside/secret", ws, why="outside")
    assert_denied(sh(ws), "touch -- a b", ws, why="at most 1")


def test_values_attached_to_short_flags_are_denied(ws: Path) -> None:
    """`-l=x` is not `--long=value`: getopt would read `=` and `x` as more flags."""
    assert_denied(sh(ws), "ls -l=R", ws, why="'-l'")
    assert_denied(sh(ws), "ls -lRx", ws, why="-lRx")


# --- paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "cat ../outside/secret",
        "cat {base}/outside/secret",
        "cat /etc/passwd",
        "cat link_out/secret",
        "ls ..",
        "ls --hide=../x",
        "touch ../pwned",
        "cat {base}/ws-evil",
    ],
)
def test_positional_paths_outside_the_roots_are_denied(ws: Path, command: str) -> None:
    r = assert_denied(sh(ws), command.format(base=ws.parent), ws, why="outside")
    assert "SECRET" not in r.output


def test_cwd_must_be_inside_roots(ws: Path) -> None:
    with pytest.raises(ToolConfigError):
        sh(ws, cwd=ws.parent)
    inner = ws / "inner"
    inner.mkdir()
    tool = sh(ws, cwd=inner)
    assert run(tool, "cat ../a.txt").output == "alpha\n"


def test_config_errors(ws: Path) -> None:
    with pytest.raises(ToolConfigError):
        sh(ws, commands={})
    with pytest.raises(ToolConfigError):
        sh(ws, commands={"/bin/ls": {}})
    with pytest.raises(ToolConfigError):
        sh(ws, commands={"ls": {"flags": ["l"]}})
    with pytest.raises(ToolConfigError):
        sh(ws, commands={"ls": {"flgs": ["-l"]}})
    with pytest.raises(ToolConfigError):
        ShellTool(name="sh", commands={"ls": {}})  # no cwd, no roots


# --- bounds -----------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return any(
        line.split()[1] in ("Z", "X") for line in status.splitlines() if line.startswith("State:")
    )


def _wait_gone(pid: int, within: float = 5.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_timeout_kills_the_whole_process_group(ws: Path) -> None:
    tool = sh(ws, commands={"sh": {"flags": ["-c"]}}, timeout_s=1)
    start = time.monotonic()
    r = run(tool, "sh -c 'sleep 60 & echo $! > child.pid; wait'")
    assert time.monotonic() - start < 5
    assert not r.ok and r.failure_class == "timeout"
    assert _wait_gone(int((ws / "child.pid").read_text()))


def test_output_that_trickles_does_not_extend_the_timeout(ws: Path) -> None:
    tool = sh(ws, commands={"sh": {"flags": ["-c"]}}, timeout_s=1)
    start = time.monotonic()
    r = run(tool, "sh -c 'while :; do printf x; sleep 0.2; done'")
    assert time.monotonic() - start < 1 + 1
    assert not r.ok and r.failure_class == "timeout"
    assert r.output.startswith("xxx")


def test_background_children_do_not_outlive_the_call(ws: Path) -> None:
    tool = sh(ws, commands={"sh": {"flags": ["-c"]}}, timeout_s=20)
    start = time.monotonic()
    r = run(tool, "sh -c 'sleep 60 & echo $! > child.pid; echo started'")
    assert time.monotonic() - start < 5  # did not wait for the child holding the pipe
    assert r.ok and r.output == "started\n"
    assert _wait_gone(int((ws / "child.pid").read_text()))


def test_large_output_is_truncated_but_fully_hashed(ws: Path) -> None:
    full = subprocess.run(["seq", "1", "100000"], capture_output=True, check=True).stdout
    r = run(sh(ws, max_output_bytes=1000), "seq 1 100000")
    assert r.ok and r.truncated
    assert r.output.endswith(f"\n[truncated {len(full) - 1000} bytes]")
    assert len(r.output.encode()) < 1100
    assert r.evidence["stdout_bytes"] == len(full)
    assert r.evidence["stdout_sha256"] == hashlib.sha256(full).hexdigest()


def test_endless_output_is_cut_off_and_killed(ws: Path) -> None:
    start = time.monotonic()
    r = run(sh(ws, max_output_bytes=1000, timeout_s=30), "yes")
    assert time.monotonic() - start < 10
    assert not r.ok and r.failure_class == "tool_error" and r.truncated
    assert "process group killed" in r.error
    assert len(r.output.encode()) < 1100


def test_schema_and_description(ws: Path) -> None:
    tool = sh(ws)
    assert tool.json_schema()["properties"].keys() == {"command"}
    assert "git" in tool.description and "ls" in tool.description
