"""Steering a run from another terminal: `govrun status` and `govrun ctl` (issue 7, part 4).

The end-to-end tests start `govrun run` in a subprocess (stdin not a terminal) on an agent
whose every step naps in a Python tool, and steer it with `govrun ctl` in-process; each
checks that the trace records every action with who did it, verifies, and replays
strictly. Below them: the control folder (:class:`FileControl`, the operator that waits)
and the registry, on their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from govrun.runtime.errors import GovrunError
from govrun.runtime.ops.control import (
    MAX_REQUEST_BYTES,
    ControlledOperator,
    FileControl,
    control_folder,
    send_request,
)
from govrun.runtime.ops.registry import (
    FINISHED_KEEP_S,
    WRITES_PER_S,
    Registry,
    RunEntry,
    shown_state,
    trace_finished,
)
from govrun.runtime.ports import Control
from govrun.runtime.replayer.session import assert_replays
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.verify import verify_trace
from tests.support.agents import answer, call, calls, of_type, run_in
from tests.support.cli import govrun

REPO = Path(__file__).resolve().parent.parent
ENTRY = "from govrun.cli.main import main; main()"
WAIT_S = 20.0
"""Every wait in these tests is bounded by this."""

NAPPER = {
    "name": "napper",
    "input": "Nap, step after step.",
    "model": {"provider": "scripted", "script": "script.yaml"},
    "tools": [{"name": "nap", "python": "tests.support.pytools:nap"}],
    "policy": {"default": "allow"},
    "budgets": {"max_steps": 100},
}


# --- a run in a subprocess ----------------------------------------------------------------------


def write_napper(folder: Path, *, naps: int, seconds: float) -> Path:
    """The agent: ``naps`` steps that each nap ``seconds``, then an answer."""
    folder.mkdir(parents=True, exist_ok=True)
    script = [calls(call("nap", {"seconds": seconds})) for _ in range(naps)]
    (folder / "script.yaml").write_text(yaml.safe_dump([*script, answer("rested")]))
    manifest = folder / "agent.yaml"
    manifest.write_text(yaml.safe_dump(NAPPER))
    return manifest


class Run:
    """One `govrun run` of the napping agent in a subprocess, registered in ``runs``."""

    def __init__(self, folder: Path, runs: Path, *, naps: int, seconds: float) -> None:
        manifest = write_napper(folder, naps=naps, seconds=seconds)
        self.trace = folder / "naps.jsonl"
        self.runs = runs
        self.log = folder / "run.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", ENTRY, "run", str(manifest), "-o", str(self.trace)],
                cwd=folder,
                env={**os.environ, "PYTHONPATH": str(REPO), "GOVRUN_RUNS": str(runs)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def entry(self) -> RunEntry | None:
        found = [e for e in Registry(self.runs).entries() if e.trace == str(self.trace.resolve())]
        return found[0] if found else None

    def registered(self, *, step: int = 1) -> RunEntry:
        """The run's entry once it is past ``step``."""
        until(lambda: (e := self.entry()) is not None and e.step >= step, f"step {step}", self)
        entry = self.entry()
        assert entry is not None
        return entry

    def events(self) -> list[dict[str, Any]]:
        """The events on disk so far (complete lines only: the run may be writing one)."""
        data = self.trace.read_bytes() if self.trace.exists() else b""
        return [orjson.loads(line) for line in data.split(b"\n")[:-1]]

    def steps_started(self) -> int:
        return len({e["step"] for e in self.events() if e["type"] == "model_request"})

    def exit_code(self) -> int:
        try:
            return self.process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"govrun run did not end within {WAIT_S:.0f}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    started: list[Run] = []

    def start(*, naps: int = 40, seconds: float = 0.2, name: str = "run") -> Run:
        run = Run(tmp_path / name, tmp_path / "runs", naps=naps, seconds=seconds)
        started.append(run)
        return run

    yield start
    for run in started:  # never leave a process behind, whatever the test did
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def until(ok: Callable[[], bool], what: str, run: Run | None = None) -> None:
    deadline = time.monotonic() + WAIT_S
    while not ok():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {WAIT_S:.0f}s" + (f"\n{run.output()}" if run else ""))
        time.sleep(0.05)


def ctl(run: Run, *args: object) -> Any:
    return govrun("ctl", *args, "--runs", run.runs)


def operator_actions(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [
        (e["action"], e["by"])
        for e in events
        if e["type"] == "interrupt" and e["kind"] == "operator"
    ]


def assert_sound(trace: Path) -> None:
    """The trace is intact and finished, and replays event for event."""
    report = verify_trace(trace)
    assert report.ok and report.finished, report.problem
    assert_replays(trace)


# --- end to end: pause, resume and stop from another terminal -------------------------------------


def test_pause_resume_stop_from_ctl(start: Callable[..., Run]) -> None:
    run = start()
    entry = run.registered()
    assert (entry.pid, entry.state, entry.agent) == (run.process.pid, "running", "napper")
    assert entry.control == str(control_folder(run.trace).resolve())

    listed = govrun("status", "--runs", run.runs)
    assert listed.code == 0, listed.flat
    assert entry.run_id in listed.out and str(run.process.pid) in listed.out
    assert str(run.trace.resolve()) in listed.out and "running" in listed.out

    paused = ctl(run, "pause", "napper", "--as", "alice", "--reason", "let me look")
    assert paused.code == 0, paused.flat
    assert f"paused {entry.run_id} at step" in paused.flat and "(by alice)" in paused.flat
    entry = run.entry()
    assert entry is not None and entry.state == "paused"
    (pause,) = [e for e in run.events() if e["type"] == "interrupt"]
    assert (pause["kind"], pause["action"], pause["by"]) == ("operator", "pause", "alice")
    assert pause["reason"] == "pause requested by alice (govrun ctl): let me look"
    seen = run.steps_started()
    time.sleep(0.8)  # no terminal, yet the run waits for ctl instead of stopping
    assert run.process.poll() is None and run.steps_started() == seen
    as_json = govrun("status", "--runs", run.runs, "--json")
    assert [e["state"] for e in orjson.loads(as_json.out)] == ["paused"]

    resumed = ctl(run, "resume", entry.run_id, "--as", "bob")
    assert resumed.code == 0, resumed.flat
    assert "resumed" in resumed.flat and "(by bob)" in resumed.flat
    until(lambda: run.steps_started() > seen, "a step after the resume", run)
    entry = run.entry()
    assert entry is not None and entry.state == "running"
    assert operator_actions(run.events()) == [("pause", "alice"), ("resume", "bob")]

    stopped = ctl(run, "stop", run.trace, "--as", "carol", "--reason", "enough")
    assert stopped.code == 0, stopped.flat
    assert "stopping" in stopped.flat and "(by carol)" in stopped.flat
    assert run.exit_code() == 1
    assert f"run {entry.run_id} ended stopped, operator_stop" in stopped.flat

    events = run.events()
    assert operator_actions(events) == [("pause", "alice"), ("resume", "bob"), ("stop", "carol")]
    stop = [e for e in events if e["type"] == "interrupt"][-1]
    assert stop["reason"] == "stop requested by carol (govrun ctl): enough"
    assert stop["failure_class"] == "operator_stop"
    finished = events[-1]
    assert (finished["type"], finished["status"], finished["failure_class"]) == (
        "run_finished",
        "stopped",
        "operator_stop",
    )
    assert_sound(run.trace)
    entry = run.entry()
    assert entry is not None and (entry.state, entry.status) == ("finished", "stopped")
    assert [h.outcome for h in entry.handled] == ["paused", "resumed", "stopping"]
    assert not control_folder(run.trace).exists()  # a finished run listens no more


def test_stop_while_running(start: Callable[..., Run]) -> None:
    run = start()
    entry = run.registered(step=2)

    stopped = ctl(run, "stop", entry.run_id, "--as", "carol")
    assert stopped.code == 0, stopped.flat
    assert run.exit_code() == 1

    events = run.events()
    assert operator_actions(events) == [("stop", "carol")]
    assert (events[-1]["status"], events[-1]["failure_class"]) == ("stopped", "operator_stop")
    assert_sound(run.trace)


def test_stop_while_paused_records_who_stopped_and_why(start: Callable[..., Run]) -> None:
    run = start()
    entry = run.registered()
    assert ctl(run, "pause", entry.run_id, "--as", "alice").code == 0

    stopped = ctl(run, "stop", entry.run_id, "--as", "carol", "--reason", "seen enough")
    assert stopped.code == 0, stopped.flat
    assert run.exit_code() == 1

    events = run.events()
    assert operator_actions(events) == [("pause", "alice"), ("stop", "carol")]
    answer_event = [e for e in events if e["type"] == "interrupt"][-1]
    assert answer_event["reason"] == "carol stopped the run (govrun ctl): seen enough"
    assert (events[-1]["status"], events[-1]["failure_class"]) == ("stopped", "operator_stop")
    assert_sound(run.trace)


def test_two_quick_requests_are_both_applied(start: Callable[..., Run]) -> None:
    run = start(naps=8)
    entry = run.registered()
    folder = Path(entry.control)

    first = send_request(folder, "pause", by="alice")
    second = send_request(folder, "resume", by="bob")  # before the run has read the first

    assert run.exit_code() == 0, run.output()
    events = run.events()
    assert operator_actions(events) == [("pause", "alice"), ("resume", "bob")]
    assert events[-1]["status"] == "completed"
    assert_sound(run.trace)
    entry = run.entry()
    assert entry is not None
    assert [entry.outcome_of(first.nonce), entry.outcome_of(second.nonce)] == ["paused", "resumed"]


def test_resume_of_a_running_run_is_acknowledged_as_ignored(start: Callable[..., Run]) -> None:
    run = start()
    entry = run.registered()

    resumed = ctl(run, "resume", entry.run_id, "--as", "bob")
    assert resumed.code == 0, resumed.flat
    assert "ignored: the run is not paused" in resumed.flat
    assert ctl(run, "stop", entry.run_id).code == 0
    assert run.exit_code() == 1
    assert [a for a, _ in operator_actions(run.events())] == ["stop"]


def test_a_run_busy_in_a_long_stage_acts_on_the_request_after_it(
    start: Callable[..., Run],
) -> None:
    run = start(naps=6, seconds=1.5)
    entry = run.registered()  # step 1 has begun: its nap takes 1.5 s

    late = ctl(run, "pause", entry.run_id, "--as", "alice", "--wait", "0.2")
    assert late.code == 1, late.flat
    assert "did not acknowledge within 0.2s" in late.flat and "stays queued" in late.flat
    until(lambda: (e := run.entry()) is not None and e.state == "paused", "paused", run)
    assert ctl(run, "stop", entry.run_id, "--as", "carol").code == 0
    assert run.exit_code() == 1
    assert operator_actions(run.events()) == [("pause", "alice"), ("stop", "carol")]
    assert_sound(run.trace)


def test_ctl_refuses_unknown_runs_and_bad_input(start: Callable[..., Run], tmp_path: Path) -> None:
    empty = govrun("ctl", "pause", "nosuch", "--runs", tmp_path / "nothing")
    assert empty.code == 2
    assert "no runs are registered" in empty.flat

    run = start()
    entry = run.registered()
    unknown = ctl(run, "pause", "nosuch")
    assert unknown.code == 2
    assert "no registered run matches 'nosuch'" in unknown.flat
    nobody = ctl(run, "pause", entry.run_id, "--as", " ")
    assert nobody.code == 2
    assert "--as must be a name" in nobody.flat
    assert ctl(run, "pause", entry.run_id, "--wait", "-1").code == 2  # typer's own check
    assert operator_actions(run.events()) == []

    assert ctl(run, "stop", entry.run_id).code == 0
    assert run.exit_code() == 1
    finished = ctl(run, "pause", entry.run_id)
    assert finished.code == 2
    assert f"run {entry.run_id} has finished (stopped)" in finished.flat


def test_status_shows_a_crashed_run_and_prune_removes_it(start: Callable[..., Run]) -> None:
    run = start()
    entry = run.registered()
    run.process.send_signal(signal.SIGKILL)
    run.process.wait(timeout=WAIT_S)

    as_json = govrun("status", "--runs", run.runs, "--json")
    (shown,) = orjson.loads(as_json.out)
    assert (shown["run_id"], shown["state"], shown["recorded_state"]) == (
        entry.run_id,
        "crashed",
        "running",
    )
    table = govrun("status", "--runs", run.runs)
    assert "crashed" in table.out and entry.run_id in table.out

    refused = ctl(run, "pause", entry.run_id)
    assert refused.code == 2
    assert "crashed" in refused.flat and "govrun resume" in refused.flat

    pruned = govrun("status", "--runs", run.runs, "--prune")
    assert pruned.code == 0, pruned.flat
    assert f"pruned {entry.run_id} (crashed)" in pruned.flat
    assert "No runs going on" in pruned.flat
    assert run.entry() is None
    assert not Path(entry.control).exists()


def test_status_with_nothing_running(tmp_path: Path) -> None:
    ran = govrun("status", "--runs", tmp_path)
    assert ran.code == 0
    assert f"No runs going on in {tmp_path}." in ran.flat
    assert orjson.loads(govrun("status", "--runs", tmp_path, "--json").out) == []


def test_a_finished_run_is_listed_with_all_and_its_control_folder_is_gone(
    start: Callable[..., Run],
) -> None:
    run = start(naps=2, seconds=0.05)
    assert run.exit_code() == 0, run.output()
    assert not control_folder(run.trace).exists()

    assert "(1 finished: govrun status --all)" in govrun("status", "--runs", run.runs).flat
    listed = govrun("status", "--runs", run.runs, "--all")
    assert "completed" in listed.out and "napper" in listed.out
    refused = ctl(run, "stop", run.trace)
    assert refused.code == 2 and "has finished (completed)" in refused.flat


def test_govrun_status_sees_runs_through_the_environment(start: Callable[..., Run]) -> None:
    run = start()
    entry = run.registered()
    ran = govrun("status", "--json", env={"GOVRUN_RUNS": str(run.runs)})
    assert [e["run_id"] for e in orjson.loads(ran.out)] == [entry.run_id]
    assert ctl(run, "stop", entry.run_id).code == 0
    assert run.exit_code() == 1


# --- the control folder on its own ---------------------------------------------------------------


def old_mtime(folder: Path) -> None:
    """Backdate the folder, so the next look trusts its mtime (no racy re-listing)."""
    past = time.time_ns() - 60 * 10**9
    os.utime(folder, ns=(past, past))


def test_polling_costs_a_flag_check_between_looks(tmp_path: Path) -> None:
    control = FileControl(tmp_path / "t.jsonl.control.d", poll_s=3600)
    for _ in range(1000):
        assert control.take() is None
    assert control.stats == 1  # one look at the folder, then nothing for poll_s


def test_the_folder_is_listed_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    control = FileControl(tmp_path / "t.jsonl.control.d", poll_s=0)
    old_mtime(control.folder)
    listings: list[str] = []
    real = os.listdir
    monkeypatch.setattr(
        "govrun.runtime.ops.control.os.listdir", lambda p: listings.append(p) or real(p)
    )
    for _ in range(50):
        assert control.take() is None
    assert (control.stats, len(listings)) == (50, 1)

    send_request(control.folder, "stop", by="carol", reason="done")
    assert control.take() == ("stop", "carol", "stop requested by carol (govrun ctl): done")


def test_requests_are_taken_in_order(tmp_path: Path) -> None:
    control = FileControl(tmp_path / "t.jsonl.control.d", poll_s=0)
    for action, by in (("pause", "a"), ("resume", "b"), ("pause", "c"), ("stop", "d")):
        send_request(control.folder, action, by=by)  # type: ignore[arg-type]

    assert control.take() == ("pause", "a", "pause requested by a (govrun ctl)")
    assert control.paused_by is not None and control.paused_by.by == "a"
    resume = control.answer()
    assert resume is not None and (resume.action, resume.by) == ("resume", "b")
    assert control.take() == ("pause", "c", "pause requested by c (govrun ctl)")
    stop = control.answer()  # a stop answers the pause
    assert stop is not None and (stop.action, stop.by) == ("stop", "d")
    assert control.take() is None
    assert sorted(os.listdir(control.folder)) == []  # each request read once, then removed


def test_ctrl_c_still_works_through_the_file_control(tmp_path: Path) -> None:
    ctrl_c = Control()
    control = FileControl(tmp_path / "t.jsonl.control.d", inner=ctrl_c, poll_s=3600)
    ctrl_c.request("pause", by="me@here")
    assert control.take() == ("pause", "me@here")
    ctrl_c.request("stop", by="me@here")  # a Ctrl-C while a ctl pause waits stops the run
    stop = control.answer()
    assert stop is not None and (stop.action, stop.by) == ("stop", "me@here")


def test_malformed_requests_are_set_aside_never_raised(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    registration = Registry(runs).register(
        run_id="r-1", agent="a", trace=tmp_path / "t.jsonl", control=tmp_path / "c"
    )
    control = FileControl(tmp_path / "t.jsonl.control.d", poll_s=0, registration=registration)
    folder = control.folder
    (folder / "01-garbage.json").write_text("{not json")
    (folder / "02-list.json").write_text("[1, 2]")
    (folder / "03-action.json").write_bytes(
        orjson.dumps({"action": "explode", "by": "mallory", "nonce": "n-bad"})
    )
    (folder / "04-nobody.json").write_bytes(orjson.dumps({"action": "stop", "nonce": "n-x"}))
    (folder / "05-huge.json").write_bytes(b" " * (MAX_REQUEST_BYTES + 1))
    (folder / "06-folder.json").mkdir()
    (folder / "07-reason.json").write_bytes(
        orjson.dumps({"action": "stop", "by": "x", "reason": 42, "nonce": "n-r"})
    )
    (folder / "08-escape.json").write_bytes(
        orjson.dumps({"action": "stop", "by": "mallory\x1b[2J", "nonce": "n-e"})
    )
    send_request(folder, "pause", by="alice")  # sorts after the bad ones

    assert control.take() == ("pause", "alice", "pause requested by alice (govrun ctl)")
    assert len(control.rejected) == 8, control.rejected
    assert any("unknown action 'explode'" in why for why in control.rejected)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f".rejected-{name}"
        for name in (
            "01-garbage.json",
            "02-list.json",
            "03-action.json",
            "04-nobody.json",
            "05-huge.json",
            "06-folder.json",
            "07-reason.json",
            "08-escape.json",
        )
    )
    entry = Registry(runs).entries()[0]
    assert entry.outcome_of("n-bad") == (
        "rejected: unknown action 'explode'; expected pause, resume or stop"
    )
    assert control.take() is None  # set aside: never read again


def test_a_finished_runs_leftover_requests_are_ignored_and_the_folder_removed(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    registration = Registry(runs).register(
        run_id="r-1", agent="a", trace=tmp_path / "t.jsonl", control=tmp_path / "c"
    )
    control = FileControl(tmp_path / "t.jsonl.control.d", registration=registration)
    late = send_request(control.folder, "pause", by="alice")
    control.close()
    registration.close()

    assert not control.folder.exists()
    entry = Registry(runs).entries()[0]
    assert entry.outcome_of(late.nonce) == "ignored: the run has finished"
    with pytest.raises(GovrunError, match="has no control folder"):
        send_request(control.folder, "pause", by="alice")


def test_stale_requests_of_an_earlier_run_are_discarded(tmp_path: Path) -> None:
    folder = tmp_path / "t.jsonl.control.d"
    folder.mkdir()
    send_request(folder, "stop", by="long ago")
    control = FileControl(folder, poll_s=0)
    assert control.take() is None
    assert (folder.stat().st_mode & 0o777) == 0o700


def test_a_ctl_pause_replays_with_who_answered_and_why(tmp_path: Path) -> None:
    """In-process: the loop records a ctl pause, the answer and a stop with reasons and
    identities, and the trace replays strictly (run_in replays every run)."""
    folder = control_folder(tmp_path / "trace-1.jsonl")  # run_in's first trace path
    folder.parent.mkdir(parents=True, exist_ok=True)
    control = FileControl(folder, poll_s=0)
    send_request(folder, "pause", by="alice", reason="checking")
    send_request(folder, "resume", by="bob", reason="fine")
    operator = ControlledOperator(StopsEveryPause(), control, sleep=lambda s: None)
    script = [calls(call("greet", {"name": str(n)})) for n in range(3)] + [answer("ok")]
    manifest = {
        "name": "t",
        "model": {"provider": "scripted", "script": "script.yaml"},
        "tools": [{"name": "greet", "python": "tests.support.pytools:greet"}],
        "policy": {"default": "allow"},
    }

    result, events = run_in(tmp_path, manifest, script=script, control=control, operator=operator)

    assert result.status == "completed"
    interrupts = of_type(events, ev.Interrupt)
    assert [(i.action, i.by, i.reason) for i in interrupts] == [
        ("pause", "alice", "pause requested by alice (govrun ctl): checking"),
        ("resume", "bob", "bob resumed the run (govrun ctl): fine"),
    ]


class StopsEveryPause:
    """Stops every pause it is asked about (what runs without a terminal do)."""

    identity = "no operator"

    def on_pause(self, reason: str) -> str:
        return "stop"


def test_pauses_not_from_ctl_still_go_to_the_operator(tmp_path: Path) -> None:
    control = FileControl(tmp_path / "t.jsonl.control.d", poll_s=3600)
    operator = ControlledOperator(StopsEveryPause(), control)
    assert operator.on_pause("budget") == "stop"
    assert (operator.identity, operator.reason) == ("no operator", None)


def test_a_terminal_may_answer_a_ctl_pause_first(tmp_path: Path) -> None:
    class Terminal:
        identity = "me@tty"

        def on_pause(self, reason: str) -> str:
            raise AssertionError("a ctl pause asks with on_pause_or")

        def on_pause_or(self, reason: str, answered: Callable[[], bool]) -> str | None:
            assert not answered()  # nothing from ctl yet: the person answers
            return "resume"

    control = FileControl(tmp_path / "t.jsonl.control.d", poll_s=0)
    send_request(control.folder, "pause", by="alice")
    assert control.take() is not None
    operator = ControlledOperator(Terminal(), control)
    assert operator.on_pause("pause requested by alice") == "resume"
    assert (operator.identity, operator.reason) == ("me@tty", None)


# --- the registry on its own ----------------------------------------------------------------------


def register(runs: Path, run_id: str = "napper-1", trace: Path | None = None) -> Any:
    trace = trace or runs.parent / f"{run_id}.jsonl"
    return Registry(runs).register(
        run_id=run_id, agent="napper", trace=trace, control=control_folder(trace)
    )


def test_entries_are_private_and_written_whole(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    registration = register(runs)
    path = runs / ".registry" / "napper-1.json"
    assert (path.stat().st_mode & 0o777) == 0o600
    entry = RunEntry.model_validate(orjson.loads(path.read_bytes()))
    assert (entry.pid, entry.state, entry.step) == (os.getpid(), "running", 0)
    assert Path(entry.trace).is_absolute() and Path(entry.control).is_absolute()

    stop = threading.Event()
    errors: list[str] = []

    def read() -> None:
        while not stop.is_set():
            try:
                RunEntry.model_validate(orjson.loads(path.read_bytes()))
            except Exception as exc:  # any failure to read is the finding
                errors.append(repr(exc))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(300):
            registration.entry["step"] = n
            registration.write(force=True)
    finally:
        stop.set()
        reader.join()
    assert errors == []  # a reader never sees half an entry
    assert sorted(p.name for p in path.parent.iterdir()) == ["napper-1.json"]  # no temp left


def test_step_updates_are_throttled_state_changes_are_not(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    registration = register(runs)  # one write
    taps = registration.taps
    path = runs / ".registry" / "napper-1.json"

    for step in range(1, 50):
        taps[ev.ModelRequest]({"step": step})
    # the first steps are written; then no more than WRITES_PER_S writes in a second
    assert orjson.loads(path.read_bytes())["step"] == WRITES_PER_S - 1
    taps[ev.Interrupt]({"step": 49, "action": "pause"})  # a state change: at once
    on_disk = orjson.loads(path.read_bytes())
    assert (on_disk["step"], on_disk["state"]) == (49, "paused")
    taps[ev.Interrupt]({"step": 49, "action": "resume"})
    taps[ev.ModelRequest]({"step": 50})
    assert orjson.loads(path.read_bytes())["step"] == 49  # held back...
    time.sleep(1.0)
    registration.flush()  # ...until the next stage boundary once allowed
    assert orjson.loads(path.read_bytes())["step"] == 50
    taps[ev.RunFinished]({"step": 50, "status": "completed", "failure_class": None})
    assert orjson.loads(path.read_bytes())["state"] == "finished"


def test_resolve_by_id_prefix_and_trace(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    register(runs, "napper-aaa")
    register(runs, "napper-abb")
    register(runs, "other-1", trace=tmp_path / "x" / "other.jsonl")
    registry = Registry(runs)

    assert registry.resolve("napper-aaa").run_id == "napper-aaa"
    assert registry.resolve("napper-ab").run_id == "napper-abb"
    assert registry.resolve(str(tmp_path / "x" / "other.jsonl")).run_id == "other-1"
    with pytest.raises(GovrunError, match="matches 2 runs"):
        registry.resolve("napper-a")
    with pytest.raises(GovrunError, match="no registered run matches"):
        registry.resolve("zzz")


def test_a_run_id_never_names_a_file_outside_the_registry(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    registration = register(runs, "../../escape")
    assert registration.path.parent == runs / ".registry"
    assert [e.run_id for e in Registry(runs).entries()] == ["../../escape"]


def test_a_dead_process_is_crashed_unless_its_trace_ended(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(b'{"type": "run_started", "seq": 0}\n')
    entry = RunEntry.model_validate(
        {
            **orjson.loads(orjson.dumps(register(tmp_path / "runs", trace=trace).entry)),
            "pid": gone.pid,
        }
    )
    assert shown_state(entry) == "crashed"
    with open(trace, "ab") as f:
        f.write(b'{"type": "run_finished", "seq": 1, "status": "completed"}\n')
    assert trace_finished(trace) is not None
    assert shown_state(entry) == "finished"
    alive = entry.model_copy(update={"pid": os.getpid()})
    assert shown_state(alive) == "running"


def test_long_finished_entries_are_swept_by_the_next_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    old = register(runs, "old-1")
    old.close()
    path = runs / ".registry" / "old-1.json"
    data = orjson.loads(path.read_bytes())
    data["updated"] = "2000-01-01T00:00:00.000000Z"
    path.write_bytes(orjson.dumps(data))
    recent = register(runs, "recent-1")
    recent.close()

    register(runs, "new-1")

    names = sorted(e.run_id for e in Registry(runs).entries())
    assert names == ["new-1", "recent-1"], f"kept for {FINISHED_KEEP_S}s only"


def test_unreadable_entries_are_skipped(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    register(runs, "good-1")
    (runs / ".registry" / "bad.json").write_text("{")
    ran = govrun("status", "--runs", runs, "--all")
    assert ran.code == 0
    assert "skipped bad.json: not a registry entry" in ran.flat
    assert "good-1" in ran.flat


def test_a_registry_that_cannot_be_written_never_stops_the_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    registration = register(runs)
    with contextlib.suppress(FileNotFoundError):
        for p in (runs / ".registry").iterdir():
            p.unlink()
    (runs / ".registry").rmdir()
    (runs / ".registry").write_text("a file where the folder was")
    registration.write(force=True)  # does not raise
    assert registration.broken is not None
    registration.close()


# --- on a terminal: the prompt and ctl both may answer a ctl pause -------------------------------


class TerminalRun(Run):
    """The napping agent's `govrun run` on a pseudo-terminal: live view, prompts."""

    def __init__(self, folder: Path, runs: Path) -> None:
        from tests.support.pty import Screen

        manifest = write_napper(folder, naps=12, seconds=0.2)
        self.trace, self.runs, self.log = folder / "naps.jsonl", runs, folder / "run.log"
        argv = [sys.executable, "-c", ENTRY, "run", str(manifest), "-o", str(self.trace)]
        self.screen = Screen(argv, rows=40, cols=120, cwd=folder)

    def output(self) -> str:
        return self.screen.screen[-3000:]

    def exit_code(self) -> int:
        deadline = time.monotonic() + WAIT_S
        while not self.screen.eof:
            if time.monotonic() > deadline:
                pytest.fail(f"govrun run did not end within {WAIT_S:.0f}s:\n{self.output()}")
            self.screen._read(0.2)
        self.screen.child.close()
        return self.screen.child.exitstatus


@pytest.fixture
def on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], TerminalRun]]:
    runs = tmp_path / "runs"
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("GOVRUN_RUNS", str(runs))
    started: list[TerminalRun] = []

    def start() -> TerminalRun:
        run = TerminalRun(tmp_path / "tty", runs)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.screen.child.isalive():
            run.screen.child.close(force=True)


def test_on_a_terminal_ctl_answers_while_the_prompt_waits(on_a_terminal: Any) -> None:
    run = on_a_terminal()
    screen, entry = run.screen, run.registered()
    assert ctl(run, "pause", entry.run_id, "--as", "alice").code == 0
    at = screen.wait_for("Paused: pause requested by alice (govrun ctl)")
    screen.wait_for("resume or stop? [r/s]", after=at)

    resumed = ctl(run, "resume", entry.run_id, "--as", "bob")
    assert resumed.code == 0, resumed.flat
    screen.wait_for("answered from govrun ctl", after=at)
    screen.wait_for("COMPLETED", after=at)
    assert operator_actions(run.events()) == [("pause", "alice"), ("resume", "bob")]
    assert_sound(run.trace)


def test_on_a_terminal_the_person_may_answer_a_ctl_pause(on_a_terminal: Any) -> None:
    from govrun.runtime.govern.approvers import local_identity

    run = on_a_terminal()
    screen, entry = run.screen, run.registered()
    assert ctl(run, "pause", entry.run_id, "--as", "alice").code == 0
    at = screen.wait_for("resume or stop? [r/s]")
    screen.child.sendline("r")
    screen.wait_for("COMPLETED", after=at)
    assert operator_actions(run.events()) == [("pause", "alice"), ("resume", local_identity())]
    assert_sound(run.trace)


def test_on_a_terminal_a_ctl_stop_is_told_and_the_view_is_not_the_tools(
    on_a_terminal: Any,
) -> None:
    """Stopped from another terminal, the run still ends with its summary, trace and head.
    And the live view, redrawn by its own thread while each inline nap runs (its prints
    captured for the trace), stayed on the screen: no call's evidence holds any of it."""
    run = on_a_terminal()
    screen, entry = run.screen, run.registered(step=3)
    assert ctl(run, "stop", entry.run_id, "--as", "carol").code == 0
    at = screen.wait_for("STOPPED")
    screen.wait_for("verify later with:", after=at)
    assert run.exit_code() == 1
    shown = " ".join(screen.screen[at:].split())
    events = run.events()
    head = events[-1]["hash"]
    assert f"head {head}" in shown and f"--head {head}" in shown
    assert "naps.jsonl" in shown
    report = verify_trace(run.trace, head=head)
    assert report.ok and report.head_checked
    finished = [e for e in events if e["type"] == "tool_finished"]
    assert len(finished) >= 2 and all("printed" not in e["evidence"] for e in finished)
