"""A trace that cannot be written halts the run before the next side effect.

Real subprocess, real file-size limit (RLIMIT_FSIZE): the kernel refuses the write of the
write-ahead ``tool_started`` that announces the report write. The write must then never
happen, `govrun run` must say why and exit 1, and the trace must verify as intact up to
the last event that was written (a crash, not tampering). The run's summary still names
the trace and that last event's hash, the head `govrun verify --head` checks it against.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from govrun.runtime.trace.verify import verify_trace

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

DRIVER = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv = ["govrun", "run", sys.argv[2], "-o", sys.argv[3]]
from govrun.cli.main import main
main()
"""


def _layout(tmp_path: Path) -> Path:
    agents = tmp_path / "agents"
    shutil.copytree(FIXTURES / "agents" / "quickstart-workspace", agents / "quickstart-workspace")
    shutil.copy(FIXTURES / "agents" / "quickstart.yaml", agents)
    shutil.copytree(FIXTURES / "scripts", tmp_path / "scripts")
    return agents / "quickstart.yaml"


def _govrun(limit: int, manifest: Path, trace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, str(limit), str(manifest), str(trace)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_a_failed_trace_write_stops_the_run_before_the_side_effect(tmp_path: Path) -> None:
    manifest = _layout(tmp_path)
    probe = _govrun(1 << 30, manifest, tmp_path / "probe.jsonl")
    assert probe.returncode == 0, probe.stderr
    lines = (tmp_path / "probe.jsonl").read_bytes().splitlines(keepends=True)
    # the write-ahead record of the call that writes report.md
    call_id = next(
        json.loads(line)["call_id"]
        for line in lines
        if b'"type":"tool_call"' in line and b"report.md" in line
    )
    index = next(
        i
        for i, line in enumerate(lines)
        if b'"type":"tool_started"' in line and json.loads(line)["call_id"] == call_id
    )
    limit = sum(len(line) for line in lines[:index]) + 10  # that line cannot fit
    report = tmp_path / "t.jsonl.workspace" / "quickstart-workspace" / "report.md"

    run = _govrun(limit, manifest, tmp_path / "t.jsonl")

    assert run.returncode == 1, run.stdout + run.stderr
    assert "writing trace" in run.stderr and "halts" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert "COMPLETED" not in run.stdout
    assert not report.exists(), "the side effect ran although its write-ahead record failed"
    verdict = verify_trace(tmp_path / "t.jsonl")
    assert verdict.intact and not verdict.ok
    assert verdict.problem is not None and verdict.problem.is_crash
    assert verdict.events == index
    rows = [
        json.loads(line)
        for line in (tmp_path / "t.jsonl").read_bytes().splitlines()
        if line.endswith(b"}")
    ]
    assert rows[-1]["type"] == "tool_call"

    said = " ".join(run.stdout.split())
    head = rows[-1]["hash"]
    assert "status FAILED trace_error" in said and str(tmp_path / "t.jsonl") in said
    assert f"head {head} " in said
    assert (
        f"verify later with: govrun verify {tmp_path / 't.jsonl'} --head {head} "
        "(intact up to here, but never sealed)"
    ) in said
    checked = verify_trace(tmp_path / "t.jsonl", head=head)
    assert checked.intact and checked.head_checked
    assert checked.problem is not None and checked.problem.is_crash  # no head mismatch


def test_a_run_whose_first_write_fails_leaves_no_empty_trace(tmp_path: Path) -> None:
    """An empty file would block the next run at that path and records nothing."""
    manifest = _layout(tmp_path)
    # the trace's own first write must be what fails, not the workspace copy made before it
    text = manifest.read_text()
    manifest.write_text(re.sub(r"(?m)^workspace:.*\n", "", text))
    trace = tmp_path / "run.jsonl"
    ran = _govrun(0, manifest, trace)
    assert ran.returncode == 1, ran.stderr
    assert "writing trace" in ran.stderr and "Traceback" not in ran.stderr
    assert not trace.exists()
