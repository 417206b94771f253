"""`--jobs`: replay and verify many traces in worker processes and report exactly what one
process reports; Ctrl-C leaves no worker behind; a worker that dies fails its own item only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import govrun.cli.jobs as jobs_module
from govrun.cli.jobs import Job, WorkerDied, run_jobs
from tests.support.agents import answer, call, calls, fs_tools, run_in, scripted_manifest
from tests.support.cli import Ran, govrun, invoke
from tests.support.jobs import die_on_three, warm_up

REPO = Path(__file__).resolve().parent.parent
TRACES = REPO / "fixtures" / "traces"
GOVRUN = [sys.executable, "-c", "from govrun.cli.main import main; main()"]

READS = {"id": "reads", "tools": ["fs_read", "fs_list"], "effect": "allow"}
WRITES = {"id": "md-writes", "tools": ["fs_write"], "when": {"path": {"glob": "*.md"}}}
OLD = {"default": "deny", "rules": [READS, {**WRITES, "effect": "allow"}]}
NEW = {"default": "deny", "rules": [READS, {**WRITES, "effect": "deny"}]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Traces recorded under OLD (some write, some only read), a crashed copy of one, a
    file that is not a trace, and the NEW manifest, which denies the writes."""
    root = tmp_path_factory.mktemp("corpus")
    folder = root / "traces"
    folder.mkdir()
    scripts = {
        "writes": [calls(call("fs_write", {"path": "a.md", "content": "# A\n"})), answer()],
        "reads": [calls(call("fs_list", {})), answer()],
        "both": [
            calls(call("fs_write", {"path": "b.md", "content": "# B\n"})),
            calls(call("fs_read", {"path": "b.md"})),
            answer(),
        ],
    }
    for name, script in scripts.items():
        manifest = scripted_manifest(tools=fs_tools("list", "read", "write"), policy=OLD)
        result, _ = run_in(root / name, manifest, script=script)
        shutil.copy(result.trace_path, folder / f"{name}.jsonl")
    lines = (folder / "both.jsonl").read_bytes().splitlines(keepends=True)
    (folder / "crashed.jsonl").write_bytes(b"".join(lines[:9]) + lines[9][:40])
    (folder / "notes.jsonl").write_text("these are my notes, not a trace\n", encoding="utf-8")
    new = root / "new"
    shutil.copytree(root / "both", new)
    manifest = scripted_manifest(tools=fs_tools("list", "read", "write"), policy=NEW)
    (new / "agent.yaml").write_text(orjson.dumps(manifest).decode(), encoding="utf-8")
    return {"folder": folder, "new": new / "agent.yaml"}


VOLATILE = {"output", "run_id", "hash", "prev", "head"}
"""Report fields that differ between any two replays (new run ids chain new hashes)."""


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def verdicts(ran: Ran) -> dict[str, str]:
    """The verdict column of the replay table, by trace name."""
    found = {}
    for line in ran.out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 6 and cells[0].endswith(".jsonl"):
            found[cells[0].removesuffix(".jsonl")] = cells[4]
    return found


def replay(corpus: dict[str, Path], out: Path, *args: object) -> Ran:
    traces = sorted(corpus["folder"].glob("*.jsonl"))
    ran = invoke("replay", *traces, "-o", out, *args)
    ran.assert_clean()
    return ran


@pytest.mark.parametrize("counterfactual", [True, False], ids=["counterfactual", "strict"])
def test_parallel_replay_reports_what_one_process_reports(
    corpus: dict[str, Path], tmp_path: Path, counterfactual: bool
) -> None:
    extra = ("--manifest", corpus["new"]) if counterfactual else ()
    one = replay(corpus, tmp_path / "one", *extra, "--jobs", "1")
    two = replay(corpus, tmp_path / "two", *extra, "--jobs", "2")

    assert (one.code, one.out, one.err) == (two.code, two.out, two.err)
    assert one.code == 2  # the notes file is unreadable
    assert verdicts(one) == (
        {"both": "changed", "crashed": "changed", "reads": "same", "writes": "changed"}
        if counterfactual
        else {"both": "same", "crashed": "diverged", "reads": "same", "writes": "same"}
    )
    assert "│ unreadable │" in one.out and "crashed.jsonl" in one.err  # its damage said first
    if counterfactual:
        assert "step 1 fs_write: allowed by rule md-writes → denied by rule md-writes" in one.out
    produced = {
        p: sorted(q.name[:9] for q in p.glob("*.jsonl"))
        for p in (tmp_path / "one", tmp_path / "two")
    }
    assert produced[tmp_path / "one"] == produced[tmp_path / "two"]  # named alike, by position

    one_json = replay(corpus, tmp_path / "one-json", *extra, "--jobs", "1", "--json")
    two_json = replay(corpus, tmp_path / "two-json", *extra, "--jobs", "2", "--json")
    assert one_json.code == two_json.code == 2
    assert stable(orjson.loads(one_json.out)) == stable(orjson.loads(two_json.out))


def test_parallel_replays_without_an_output_folder_never_share_a_name(
    corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    traces = sorted(p for p in corpus["folder"].glob("*.jsonl") if p.stem in ("both", "reads"))
    ran = govrun("replay", *traces, *traces, "--jobs", "2", "--json")
    assert ran.code == 0, ran.flat
    outputs = [d["output"] for d in orjson.loads(ran.out)]
    assert len(set(outputs)) == 4 and all(Path(o).exists() for o in outputs)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_worker_that_dies_fails_its_own_item_only(start: str) -> None:
    """Forked when nothing but this thread runs; spawned (warmed first) once one does."""
    job = Job(die_on_three, lambda result: False, "test", warm=warm_up)
    with another_thread_running() if start == "spawn" else contextlib.nullcontext():
        assert jobs_module._context().get_start_method() == start
        results = run_jobs(job, list(range(8)), jobs=2)
    assert results[:3] == [0, 10, 20] and results[4:] == [40, 50, 60, 70]
    assert isinstance(results[3], WorkerDied)
    assert "killed by SIGKILL" in results[3].message


@contextlib.contextmanager
def another_thread_running() -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# --- Ctrl-C ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Enough traces that replaying them takes a while: copies of one long run."""
    root = tmp_path_factory.mktemp("many")
    steps = [calls(call("fs_list", {})) for _ in range(60)] + [answer()]
    manifest = scripted_manifest(tools=fs_tools("list"), budgets={"max_steps": 100})
    result, _ = run_in(root / "run", manifest, script=steps)
    copies = []
    for n in range(200):
        copies.append(root / f"copy-{n:02d}.jsonl")
        shutil.copy(result.trace_path, copies[-1])
    return copies


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("whole_group", [True, False], ids=["terminal", "parent-only"])
def test_ctrl_c_stops_a_parallel_replay_and_leaves_no_worker(
    many: list[Path], tmp_path: Path, whole_group: bool
) -> None:
    """A terminal sends SIGINT to the whole foreground group; ``kill -INT`` to one process."""
    args = [*GOVRUN, "replay", *map(str, many), "-o", str(tmp_path / "out"), "--jobs", "2"]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while len(children(proc.pid)) < 2 and time.monotonic() < deadline:  # the 2 workers
        time.sleep(0.05)
    workers = children(proc.pid)
    assert len(workers) >= 2, "the workers never started"
    time.sleep(0.3)  # into the replays
    assert proc.poll() is None, "the replays finished before Ctrl-C: give them more work"
    if whole_group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in out + err
    deadline = time.monotonic() + 10
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in workers if running(p)]


# --- verify ----------------------------------------------------------------------------------


def test_verify_several_traces_in_parallel_tables_them(tmp_path: Path) -> None:
    names = ["complete", "tampered", "torn", "with_blob"]
    ran = govrun("verify", *(TRACES / f"{n}.jsonl" for n in names), "--jobs", "2")
    assert ran.code == 1
    for name, verdict in zip(names, ["intact", "altered", "incomplete", "intact"], strict=True):
        assert f"{name}.jsonl" in ran.out and verdict in ran.out
    assert ran.out.rstrip().endswith("4 traces: 2 intact, 1 incomplete, 1 altered")

    one = govrun("verify", *(TRACES / f"{n}.jsonl" for n in names), "--jobs", "1")
    assert (one.code, one.out) == (ran.code, ran.out)


def test_verify_several_intact_traces_exits_0_and_lists_json() -> None:
    traces = [TRACES / "complete.jsonl", TRACES / "with_blob.jsonl"]
    ran = govrun("verify", *traces, "--jobs", "2")
    assert ran.code == 0 and "2 traces: 2 intact" in ran.out
    ran = govrun("verify", *traces, "--json")
    assert ran.code == 0
    assert [d["path"] for d in orjson.loads(ran.out)] == [str(t) for t in traces]
    assert all(d["ok"] for d in orjson.loads(ran.out))


def test_verify_several_with_one_unreadable_exits_2(tmp_path: Path) -> None:
    ran = govrun("verify", TRACES / "complete.jsonl", tmp_path / "missing.jsonl")
    assert ran.code == 2
    assert "unreadable" in ran.out and "missing.jsonl: no such trace" in ran.flat
    (doc, missing) = orjson.loads(
        govrun("verify", TRACES / "complete.jsonl", tmp_path / "missing.jsonl", "--json").out
    )
    assert doc["ok"] and missing["error"].endswith("no such trace")


def test_verify_refuses_head_with_several_traces() -> None:
    ran = govrun("verify", TRACES / "complete.jsonl", TRACES / "torn.jsonl", "--head", "ab" * 32)
    assert ran.code == 2
    assert "--head is the head kept for one trace, and 2 traces were given" in ran.flat
