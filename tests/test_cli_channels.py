"""Clean channels (issue 17): with ``--json`` standard output carries JSON lines and nothing
else, whatever the agent's tools print, and what an inline Python tool prints is evidence of
its call, in bounded memory.

A real `govrun run --json` process, its stdout and stderr in pipes, on an agent whose inline
tools print 100 MiB, print from threads of their own, and write past Python to file
descriptor 1 (itself, and through a child process). Its peak memory is read from inside
the process as it exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from govrun.runtime.trace.events import parse_event
from govrun.runtime.trace.record import Record
from govrun.runtime.trace.verify import verify_trace

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20

DRIVER = """
import sys
rss_file, sys.argv = sys.argv[1], ["govrun", *sys.argv[2:]]
from govrun.cli.main import main
try:
    main()
finally:
    with open("/proc/self/status") as status, open(rss_file, "w") as f:
        f.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""
"""Runs govrun and notes its peak resident memory in KiB: VmHWM, this process image's own
(``ru_maxrss`` keeps the parent's peak across fork and exec: the test process's)."""

AGENT = """\
name: printer
input: Print a lot.
model: {provider: scripted, script: script.yaml}
tools:
  - {name: flood, python: 'tests.support.pytools:flood'}
  - {name: chorus, python: 'tests.support.pytools:chatty_threads'}
  - {name: beside, python: 'tests.support.pytools:beside_python'}
policy: {default: allow}
"""

SCRIPT = """\
- tool_calls: [{name: flood, arguments: {megabytes: 100}}]
- tool_calls: [{name: chorus, arguments: {threads: 4, lines: 200}}]
- tool_calls: [{name: beside, arguments: {}}]
- content: Printed.
"""


def run_json(folder: Path) -> tuple[subprocess.CompletedProcess[bytes], int]:
    """``govrun run agent.yaml -o trace.jsonl --json`` in ``folder``: the finished process
    and its peak resident memory in MiB."""
    (folder / "agent.yaml").write_text(AGENT)
    (folder / "script.yaml").write_text(SCRIPT)
    rss = folder / "rss"
    args = ["run", "agent.yaml", "-o", "trace.jsonl", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(rss), *args],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    return done, int(rss.read_text()) // 1024


def evidence(trace: Path, tool: str) -> dict[str, Any]:
    """The evidence of ``tool``'s one call, with large values read back from the sidecar."""
    record = Record.load(trace)
    (finished,) = [
        e
        for line in trace.read_bytes().splitlines()
        if (e := orjson.loads(line))["type"] == "tool_finished" and e["tool"] == tool
    ]
    return record.resolved(finished["evidence"])


def test_json_stdout_holds_only_events_whatever_the_tools_print(tmp_path: Path) -> None:
    done, rss_mib = run_json(tmp_path)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]

    # Every stdout line is one event of the trace, in order, and nothing else is there.
    lines = done.stdout.splitlines()
    streamed = [parse_event(orjson.loads(line)) for line in lines]
    trace = tmp_path / "trace.jsonl"
    recorded = trace.read_bytes().splitlines()
    assert [e.hash for e in streamed] == [orjson.loads(line)["hash"] for line in recorded]
    report = verify_trace(trace)
    assert report.ok and report.finished

    # The flood is evidence, clipped; 100 MiB never sat in memory.
    flood = evidence(trace, "flood")["printed"]
    assert flood["bytes"] == 100 * MIB + len("flooded\n")
    assert flood["stdout"].startswith("z" * 1000) and flood["stdout"].endswith(
        f"[truncated {100 * MIB - 65536} bytes]"
    )
    assert flood["stderr"] == "flooded\n"
    assert rss_mib < 120, f"peak memory {rss_mib} MiB: the printed output was kept"

    # Threads of the tool's own: every line captured, whole.
    chorus = evidence(trace, "chorus")["printed"]["stdout"].splitlines()
    assert sorted(chorus) == sorted(f"thread {n} line {i}" for n in range(4) for i in range(200))

    # Past Python, on fd 1: not captured, but on stderr, never among the events.
    stderr = done.stderr.decode(errors="replace")
    assert "written to fd 1 directly" in stderr and "a child process on fd 1" in stderr
    beside = evidence(trace, "beside")["printed"]
    assert beside["stdout"] == ""
    assert "a warning from the tool" in beside["stderr"]
    assert "a log record from the tool" in beside["stderr"]
    assert "a warning from the tool" not in stderr  # the tool's, so in its evidence only

    # The summary goes to stderr, with the trace and its head.
    assert f"head {recorded and orjson.loads(recorded[-1])['hash']}" in stderr
