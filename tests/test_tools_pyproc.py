"""Python tools under ``isolation: process``: real worker processes, real kills.

Functions come from ``tests/support/pytools.py``. A worker's process id is learnt from the
function itself (``whoami``, or a pid file a stubborn function writes), and "gone" means no
such process, or only its zombie when an init that does not reap has inherited it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from govrun.runtime.tools import (
    PythonTool,
    ScopeViolation,
    ToolResult,
    load_python_tool,
    parse_arguments,
)
from tests.support.cli import govrun

MOD = "tests.support.pytools"
REPO = Path(__file__).resolve().parent.parent
ENTRY = "from govrun.cli.main import main; main()"
STARTUP_MARGIN_S = 2.0
"""Starting a worker (~0.1 s) on a busy machine, plus killing and reaping it."""


@pytest.fixture
def tools() -> Iterator[list[PythonTool]]:
    """Tools made by :func:`load` in a test, closed after it (no worker outlives a test)."""
    made: list[PythonTool] = []
    yield made
    for tool in made:
        tool.close()


def load(made: list[PythonTool], func: str, *, module: str = MOD, **kw: Any) -> PythonTool:
    kw.setdefault("timeout_s", 10)
    kw.setdefault("max_output_bytes", 65536)
    kw.setdefault("isolation", "process")
    tool = load_python_tool(f"{module}:{func}", name=func, **kw)
    made.append(tool)
    return tool


def call(tool: PythonTool, args: dict[str, Any]) -> ToolResult:
    return tool.run(parse_arguments(tool, args))


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not: it has ended, nobody reaped it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def wait_gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_for_file(path: Path, within_s: float = 20.0) -> str:
    deadline = time.monotonic() + within_s
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text()


# --- one tool, its worker ----------------------------------------------------------------


def test_a_worker_is_started_on_the_first_call_and_kept_warm(tools: list[PythonTool]) -> None:
    tool = load(tools, "whoami")
    assert tool._process is not None and tool._process.pid is None  # lazily
    first, second = call(tool, {}), call(tool, {})
    assert first.ok and second.ok
    pid = first.data["result"]
    assert pid != os.getpid() and second.data["result"] == pid == tool._process.pid
    assert first.evidence == {
        "callable": f"{MOD}:whoami",
        "result_sha256": first.evidence["result_sha256"],
        "isolation": "process",
    }


def test_a_function_that_catches_everything_is_stopped_at_its_timeout(
    tools: list[PythonTool], tmp_path: Path
) -> None:
    tool = load(tools, "stubborn", timeout_s=2)
    pidfile = tmp_path / "worker.pid"
    started = time.monotonic()
    result = call(tool, {"pidfile": str(pidfile)})
    took = time.monotonic() - started
    assert 2 <= took < 2 + STARTUP_MARGIN_S, took
    assert result.failure_class == "timeout" and not result.ok
    assert result.error == "Python tool did not return within 2s; its worker process was killed"
    assert result.evidence["isolation"] == "process"
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert tool._process is not None and tool._process.pid is None
    # The next call gets a fresh worker.
    again = load(tools, "whoami", timeout_s=2)
    assert call(again, {}).ok
    other = tmp_path / "again.pid"
    assert call(tool, {"pidfile": str(other)}).failure_class == "timeout"
    assert int(other.read_text()) != pid


def test_a_timeout_kills_what_the_tool_started_too(tools: list[PythonTool], tmp_path: Path) -> None:
    tool = load(tools, "stubborn_parent", timeout_s=1)
    pidfile = tmp_path / "child.pid"
    assert call(tool, {"pidfile": str(pidfile)}).failure_class == "timeout"
    child = int(pidfile.read_text())
    assert wait_gone(child), "the tool's child process survived its worker"


def test_inline_is_the_default_and_its_timeout_is_best_effort(tools: list[PythonTool]) -> None:
    tool = load(tools, "slow", isolation="inline", timeout_s=0.2)
    assert tool._process is None
    result = call(tool, {"seconds": 5})
    assert result.failure_class == "timeout" and "isolation" not in result.evidence


def test_what_a_call_prints_is_evidence_not_output(
    tools: list[PythonTool], capfd: pytest.CaptureFixture[str]
) -> None:
    tool = load(tools, "chatty", max_output_bytes=1000)
    result = call(tool, {"stdout_bytes": 10_000_000, "stderr_text": "a warning"})
    seen = capfd.readouterr()
    assert "xxxx" not in seen.out + seen.err and "a warning" not in seen.err
    assert result.ok and result.output == "printed" and result.data == {"result": "printed"}
    printed = result.evidence["printed"]
    assert printed["bytes"] == 10_000_000 + len("a warning\n")
    assert printed["stdout"] == "x" * 1000 + "\n[truncated 9999000 bytes]"
    assert printed["stderr"] == "a warning\n"
    # The next call starts from nothing.
    quiet = call(tool, {"stdout_bytes": 0, "stderr_text": ""})
    assert quiet.evidence["printed"] == {"stdout": "", "stderr": "\n", "bytes": 1}


def test_a_worker_that_dies_mid_call_is_a_tool_error(tools: list[PythonTool]) -> None:
    tool = load(tools, "crashes")
    result = call(tool, {"status": 3, "last_words": "out of memory, sort of"})
    assert result.failure_class == "tool_error"
    assert result.error == (
        "the worker process died during the call (exit status 3); its stderr ends: "
        "out of memory, sort of"
    )
    assert call(load(tools, "whoami"), {}).ok


def test_a_worker_killed_by_a_signal_says_which(tools: list[PythonTool]) -> None:
    result = call(load(tools, "segfaults"), {})
    assert result.failure_class == "tool_error"
    assert result.error == "the worker process died during the call (killed by SIGSEGV)"


def test_a_worker_gone_between_calls_is_replaced(tools: list[PythonTool]) -> None:
    tool = load(tools, "whoami")
    pid = call(tool, {}).data["result"]
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    again = call(tool, {})
    assert again.ok and again.data["result"] != pid


def test_exceptions_read_as_they_do_inline(tools: list[PythonTool]) -> None:
    for func, args in (("fails", {"message": "x"}), ("exits", {})):
        inline = call(load(tools, func, isolation="inline"), args)
        process = call(load(tools, func), args)
        assert (process.failure_class, process.error) == (inline.failure_class, inline.error)
        assert process.failure_class == "tool_error"
    # Its standard input is empty: a tool cannot read govrun's terminal.
    assert call(load(tools, "asks"), {}).error == "EOFError: EOF when reading a line"


@pytest.mark.parametrize(
    ("func", "args"),
    [
        ("add", {"a": 1}),
        ("add", {"a": "5", "b": 3}),  # coerced to 5, as inline
        ("greet", {"name": "ada"}),
        ("greet", {"name": "n" * 1_000_000}),  # more than a pipe holds, both ways
        ("untyped", {"value": {"k": [1]}, "times": 3}),
        ("move", {"p": {"x": 1, "y": "2"}, "dx": 3}),
        ("shadowing", {"json": "j"}),
        ("positional", {"a": 1, "b": 2}),
        ("aslow", {"seconds": 0}),
        ("long_text", {"n": 70_000}),
    ],
)
def test_arguments_and_results_are_exactly_as_inline(
    tools: list[PythonTool], func: str, args: dict[str, Any]
) -> None:
    inline = call(load(tools, func, isolation="inline"), args)
    process = call(load(tools, func), args)
    assert process.ok and inline.ok
    assert (process.output, process.data, process.truncated) == (
        inline.output,
        inline.data,
        inline.truncated,
    )
    assert process.evidence["result_sha256"] == inline.evidence["result_sha256"]


def test_invalid_arguments_are_refused_before_any_worker(tools: list[PythonTool]) -> None:
    tool = load(tools, "add")
    with pytest.raises(ScopeViolation, match="invalid arguments for add"):
        parse_arguments(tool, {"a": "five"})
    assert tool._process is not None and tool._process.pid is None


def test_close_leaves_no_process(tools: list[PythonTool]) -> None:
    tool = load(tools, "whoami")
    tool.close()  # nothing started yet
    pid = call(tool, {}).data["result"]
    tool.close()
    assert not Path(f"/proc/{pid}").exists()
    tool.close()
    assert call(tool, {}).data["result"] != pid  # a later call starts again


def test_a_module_the_worker_cannot_import_is_a_clear_error(
    tools: list[PythonTool], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVRUN_TEST_ONCE", str(tmp_path / "imported"))
    monkeypatch.delitem(sys.modules, "tests.support.pyonce", raising=False)
    tool = load(tools, "ok", module="tests.support.pyonce")
    result = call(tool, {})
    assert result.failure_class == "tool_error"
    assert result.error == (
        "the worker process of ok could not start: tool 'ok': cannot import module "
        "'tests.support.pyonce': RuntimeError: this module was already imported once"
    )


# --- through govrun ----------------------------------------------------------------------

AGENT_TOOLS = """\
import os
import time
from pathlib import Path


def whoami(pidfile: str) -> int:
    Path(pidfile).write_text(str(os.getpid()))
    return os.getpid()


def stubborn(pidfile: str) -> str:
    Path(pidfile).write_text(str(os.getpid()))
    print("not stopping")
    while True:
        try:
            time.sleep(0.1)
        except BaseException:
            pass
"""


def write_agent(folder: Path, *, timeout_s: float) -> Path:
    """An agent whose tools module sits beside its manifest (imported from there, as
    inline), calling ``whoami`` then ``stubborn``; pid files land in ``folder``."""
    module = f"pyproc_tools_{folder.name.replace('-', '_')}"
    (folder / f"{module}.py").write_text(AGENT_TOOLS)
    (folder / "script.yaml").write_text(
        "- tool_calls: [{name: whoami, arguments: {pidfile: " + str(folder / "warm.pid") + "}}]\n"
        "- tool_calls: [{name: stubborn, arguments: {pidfile: "
        + str(folder / "stubborn.pid")
        + "}}]\n- content: done\n"
    )
    manifest = folder / "agent.yaml"
    manifest.write_text(
        "name: pyproc\n"
        "model: {provider: scripted, script: script.yaml}\n"
        "policy: {default: allow}\n"
        "tools:\n"
        f"  - {{name: whoami, python: '{module}:whoami', isolation: process}}\n"
        f"  - {{name: stubborn, python: '{module}:stubborn', isolation: process, "
        f"timeout_s: {timeout_s}}}\n"
    )
    return manifest


def test_govrun_run_records_the_timeout_and_leaves_no_worker(tmp_path: Path) -> None:
    manifest = write_agent(tmp_path, timeout_s=2)
    trace = tmp_path / "trace.jsonl"
    started = time.monotonic()
    ran = govrun("run", manifest, "-i", "go", "-o", trace, "--json")
    assert time.monotonic() - started < 2 + 2 * STARTUP_MARGIN_S
    assert ran.code == 0, ran.flat
    assert all(orjson.loads(line) for line in ran.out.splitlines())  # JSON lines only
    events = [orjson.loads(line) for line in trace.read_bytes().splitlines()]
    finished = [e for e in events if e["type"] == "tool_finished"]
    outcomes = [(e["ok"], e.get("failure_class")) for e in finished]
    assert outcomes == [(True, None), (False, "timeout")]
    assert finished[1]["evidence"]["printed"]["stdout"] == "not stopping\n"
    for pidfile in ("warm.pid", "stubborn.pid"):
        assert not running(int((tmp_path / pidfile).read_text())), pidfile
    assert govrun("verify", trace).code == 0
    replayed = govrun("replay", trace, "-o", tmp_path / "replay.jsonl")
    assert replayed.code == 0, replayed.flat


def test_isolation_on_a_builtin_is_refused_by_validate(tmp_path: Path) -> None:
    manifest = tmp_path / "agent.yaml"
    manifest.write_text(
        "name: x\n"
        "model: {provider: scripted, script: agent.yaml}\n"
        "tools:\n"
        "  - name: read\n"
        "    uses: fs.read\n"
        "    scope: {roots: [.]}\n"
        "    isolation: process\n"
    )
    ran = govrun("validate", manifest)
    assert ran.code == 2
    assert (
        f"{manifest}:7:5 tools[0].isolation: expected `isolation` only on python tools" in ran.flat
    )
    manifest.write_text(manifest.read_text().replace("process", "thread"))
    assert "expected one of inline, process; got 'thread'" in govrun("validate", manifest).flat


def test_the_snapshot_names_isolation_only_when_it_is_process(tmp_path: Path) -> None:
    """A run recorded before `isolation` existed has none in its snapshot: it loads as
    inline, and a run today writes the same snapshot (and hash) for the same manifest."""
    from govrun.runtime.manifest.schema import load_manifest, manifest_from_snapshot

    snapshot = load_manifest(write_agent(tmp_path, timeout_s=2)).canonical_dict()
    assert [t.get("isolation") for t in snapshot["tools"]] == ["process", "process"]
    del snapshot["tools"][0]["isolation"]
    old = manifest_from_snapshot(snapshot, base_dir=tmp_path)
    assert [t.isolation for t in old.tools] == ["inline", "process"]
    assert old.canonical_dict() == snapshot


def test_a_worker_dies_with_govrun(tmp_path: Path) -> None:
    """SIGKILL govrun while the worker is in the middle of a call that ignores everything:
    nobody is left to close its pipe, and the worker goes anyway."""
    manifest = write_agent(tmp_path, timeout_s=120)
    trace = tmp_path / "trace.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "run", str(manifest), "-i", "go", "-o", str(trace)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        worker = int(wait_for_file(tmp_path / "stubborn.pid"))
        assert running(worker)
    finally:
        process.kill()
        process.wait()
    assert wait_gone(worker), "the worker outlived govrun"
    assert wait_gone(int((tmp_path / "warm.pid").read_text()))
