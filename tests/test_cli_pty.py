"""`govrun run` in a real pseudo-terminal: the live view, Ctrl-C pause → resume/stop, a
pause-action interrupt asking the operator, and a double Ctrl-C. However a run ends there,
the summary names its trace and head, and `govrun verify --head` accepts them. Needs
``pexpect``.

The agent is offline: a scripted model proposes ``shell`` ``sleep 2`` twice (only ``sleep``
is allowlisted, without flags, confined to its workspace), then answers. Every wait is
bounded, and every spawned process is killed at the end of its test whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from govrun.cli.main import app
from govrun.runtime.govern.approvers import StopOperator, local_identity
from tests.support.pty import ANSI, WAIT_S, Screen

try:
    import pexpect
except ImportError:  # reported as a failure by the `spawn` fixture, never skipped
    pexpect = None

ENTRY = "from govrun.cli.main import main; main()"
REPO = Path(__file__).resolve().parents[1]
ROWS, COLS = 40, 100


# --- the agent -------------------------------------------------------------------------------


def sleeper(folder: Path, *, seconds: int = 2, interrupts: str = "") -> Path:
    """An agent that runs ``sleep <seconds>`` twice through the shell tool, then answers."""
    (folder / "ws").mkdir(parents=True)
    call = f'- tool_calls: [{{name: shell, arguments: {{command: "sleep {seconds}"}}}}]\n'
    (folder / "script.yaml").write_text(call + call + "- content: Slept twice.\n")
    manifest = folder / "agent.yaml"
    manifest.write_text(
        "name: sleeper\n"
        "input: Sleep twice, then answer.\n"
        "model: {provider: scripted, script: script.yaml}\n"
        "tools:\n"
        "  - name: shell\n"
        "    uses: shell\n"
        "    scope: {roots: [ws], cwd: ws, commands: {sleep: {}}}\n"
        "policy:\n"
        "  default: deny\n"
        "  rules: [{id: sleeps, tools: [shell], effect: allow}]\n"
        "budgets: {max_steps: 6, max_tool_calls: 5}\n" + interrupts
    )
    return manifest


REPEAT_PAUSES = "interrupts: {repeat_call: {max_repeats: 2, action: pause}}\n"


def events_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def interrupts_of(path: Path) -> list[tuple[str, str, str | None]]:
    return [(e["kind"], e["action"], e["by"]) for e in events_of(path) if e["type"] == "interrupt"]


def verify(trace: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify", str(trace), *args], env={"COLUMNS": "250"})
    return result.exit_code, " ".join(ANSI.sub("", result.output).split())


def check_told(term: Terminal, at: int, trace: Path) -> str:
    """After ``at``: the summary panel with the trace's path, its head, and how to verify
    it later, all as `govrun verify --head` confirms (the trace is written relative to the
    run's folder, so its path fits on a line). Returns the head."""
    shown = term.screen[at:]
    assert re.search(rf"│ trace +{re.escape(trace.name)} +│", shown), shown
    heads = re.findall(r"^head ([0-9a-f]{64})$", shown, re.MULTILINE)
    assert len(heads) == 1, shown
    assert f"verify later with: govrun verify {trace.name} --head {heads[0]}" in shown, shown
    code, said = verify(trace, "--head", heads[0])
    assert code == 0 and "✓ intact" in said, said
    assert heads[0] == events_of(trace)[-1]["hash"]
    return heads[0]


# --- the terminal ----------------------------------------------------------------------------


class Terminal(Screen):
    """One `govrun` process on a pseudo-terminal and everything it has shown so far."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        super().__init__([sys.executable, "-c", ENTRY, *args], rows=ROWS, cols=COLS, cwd=cwd)

    def finish(self, timeout: float = WAIT_S) -> int:
        """Wait for the process to exit; return its exit code (128+N if killed by signal N)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() > deadline:
                pytest.fail(f"govrun did not exit within {timeout:.0f} s:\n{self.screen[-3000:]}")
            self._read(0.2)
        self.child.close()
        if self.child.signalstatus is not None:
            return 128 + self.child.signalstatus
        return self.child.exitstatus

    def frame(self, at: int, end: int) -> str:
        """The live-view frame around position ``at``, up to position ``end``."""
        start = self.screen.rfind("govrun run ·", 0, at)
        assert start >= 0, self.screen[:at]
        return self.screen[start:end]


@pytest.fixture
def spawn() -> Iterator[Any]:
    if pexpect is None:
        pytest.fail(
            "pexpect is not installed: the pseudo-terminal tests need it (pip install pexpect)."
        )
    started: list[Terminal] = []

    def start(args: list[str], cwd: Path) -> Terminal:
        terminal = Terminal(args, cwd)
        started.append(terminal)
        return terminal

    yield start
    for terminal in started:  # never leave a process behind, whatever the test did
        if terminal.child.isalive():
            terminal.child.close(force=True)


# --- (1) the live view -----------------------------------------------------------------------


def test_live_view(spawn: Any, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    term = spawn(["run", str(sleeper(tmp_path)), "-o", str(trace)], tmp_path)

    at = term.wait_for("in flight: shell command='sleep 2'")
    frame = term.frame(at, term.wait_for("wall s", after=at))  # the whole frame, to its gauges
    assert "sleeper · step 1" in frame, frame
    assert "running shell" in frame, frame
    assert re.search(r"steps +━+.* 1 / 6", frame), frame  # budget gauges, with bars
    assert re.search(r"tool calls +━+.* 0 / 5", frame), frame
    term.wait_for("sleeper · step 2", after=at)  # still live: the second call
    end = term.wait_for("COMPLETED", after=at)

    assert term.finish() == 0
    summary = term.screen[end - 200 :]
    assert "Slept twice." in summary
    assert "3  (3 model calls, 2 tool calls, 0 denied)" in summary
    assert re.search(r"head [0-9a-f]{64}", summary)
    assert verify(trace)[0] == 0


# --- (2, 3) Ctrl-C pauses; the operator stops or resumes --------------------------------------


def pause_with_ctrl_c(term: Terminal) -> int:
    at = term.wait_for("in flight: shell command='sleep 2'")
    term.child.send("\x03")
    term.wait_for("Ctrl-C: pausing after the current stage", after=at)
    term.wait_for("Paused: pause requested by", after=at)
    return term.wait_for("resume or stop? [r/s]", after=at)


def test_ctrl_c_then_stop(spawn: Any, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    term = spawn(["run", str(sleeper(tmp_path)), "-o", trace.name], tmp_path)
    at = pause_with_ctrl_c(term)
    term.child.sendline("s")
    term.wait_for("STOPPED", after=at)
    term.wait_for("operator_stop", after=at)
    assert term.finish() == 1
    check_told(term, at, trace)
    me = local_identity()
    assert interrupts_of(trace) == [("operator", "pause", me), ("operator", "stop", me)]
    events = events_of(trace)
    assert [e["type"] for e in events].count("tool_finished") == 1  # the first sleep finished
    finished = events[-1]
    assert (finished["type"], finished["status"], finished["failure_class"]) == (
        "run_finished",
        "stopped",
        "operator_stop",
    )


def test_ctrl_c_then_resume(spawn: Any, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    term = spawn(["run", str(sleeper(tmp_path)), "-o", str(trace)], tmp_path)
    at = pause_with_ctrl_c(term)
    term.child.sendline("r")
    term.wait_for("COMPLETED", after=at)
    assert term.finish() == 0

    code, said = verify(trace)
    assert code == 0, said
    me = local_identity()
    assert interrupts_of(trace) == [("operator", "pause", me), ("operator", "resume", me)]
    events = events_of(trace)
    assert [e["type"] for e in events].count("tool_finished") == 2
    assert events[-1]["status"] == "completed"


def test_ctrl_c_at_the_prompt_stops(spawn: Any, tmp_path: Path) -> None:
    """What was reported: the second Ctrl-C landed on the prompt, armed another pause and
    left the run waiting. At the prompt Ctrl-C is an answer: stop, recorded as this
    operator's, and the end is told as any other."""
    trace = tmp_path / "trace.jsonl"
    term = spawn(["run", str(sleeper(tmp_path)), "-o", trace.name], tmp_path)
    at = pause_with_ctrl_c(term)
    term.child.send("\x03")
    term.wait_for("■ Ctrl-C at the prompt: stopping the run", after=at)
    term.wait_for("STOPPED", after=at)
    assert term.finish() == 1
    check_told(term, at, trace)
    assert term.screen.count("Ctrl-C: pausing") == 1 and term.screen.count("Paused:") == 1

    me = local_identity()
    assert interrupts_of(trace) == [("operator", "pause", me), ("operator", "stop", me)]
    events = events_of(trace)
    stop = [e for e in events if e["type"] == "interrupt"][-1]
    assert stop["reason"] == "stopped with Ctrl-C at the pause prompt"
    assert (events[-1]["status"], events[-1]["failure_class"]) == ("stopped", "operator_stop")


def test_end_of_input_at_the_prompt_stops(spawn: Any, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    term = spawn(["run", str(sleeper(tmp_path)), "-o", trace.name], tmp_path)
    at = pause_with_ctrl_c(term)
    term.child.sendeof()
    term.wait_for("■ end of input: stopping the run", after=at)
    assert term.finish() == 1
    check_told(term, at, trace)
    stop = [e for e in events_of(trace) if e["type"] == "interrupt"][-1]
    assert (stop["action"], stop["reason"]) == ("stop", "end of input at the pause prompt: stopped")


def test_after_a_resume_ctrl_c_pauses_again(spawn: Any, tmp_path: Path) -> None:
    """A pause answered at the prompt is over: the next Ctrl-C asks for a new pause rather
    than stopping at once."""
    trace = tmp_path / "trace.jsonl"
    term = spawn(["run", str(sleeper(tmp_path)), "-o", trace.name], tmp_path)
    at = pause_with_ctrl_c(term)
    term.child.sendline("r")
    at = term.wait_for("sleeper · step 2", after=at)
    term.child.send("\x03")
    term.wait_for("Ctrl-C: pausing after the current stage", after=at)
    at = term.wait_for("resume or stop? [r/s]", after=at)
    term.child.sendline("s")
    term.wait_for("STOPPED", after=at)
    assert term.finish() == 1
    check_told(term, at, trace)
    me = local_identity()
    assert interrupts_of(trace) == [
        ("operator", "pause", me),
        ("operator", "resume", me),
        ("operator", "pause", me),
        ("operator", "stop", me),
    ]


def test_an_inline_tool_that_prints_hides_neither_the_view_nor_ctrl_c(
    spawn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an inline Python tool runs, sys.stdout is its capture. The live view's refresh
    thread and the Ctrl-C notice (printed by the signal handler, in the middle of the call)
    still reach the terminal, and the call's evidence holds what the tool printed, alone."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    (tmp_path / "script.yaml").write_text(
        "- tool_calls: [{name: nap, arguments: {seconds: 3}}]\n- content: Rested.\n"
    )
    (tmp_path / "agent.yaml").write_text(
        "name: talker\n"
        "input: Nap.\n"
        "model: {provider: scripted, script: script.yaml}\n"
        "tools: [{name: nap, python: 'tests.support.pytools:talk_and_nap'}]\n"
        "policy: {default: allow}\n"
    )
    trace = tmp_path / "trace.jsonl"
    term = spawn(["run", "agent.yaml", "-o", trace.name], tmp_path)
    at = term.wait_for("running nap")
    ticking = re.compile(r"running nap  \(1\.\ds\)")
    deadline = time.monotonic() + WAIT_S
    while not ticking.search(term.screen, at):  # redrawn a second into the call
        assert time.monotonic() < deadline, term.screen[-2000:]
        term._read(0.1)
    term.child.send("\x03")
    term.wait_for("Ctrl-C: pausing after the current stage", after=at)
    done = term.wait_for("resume or stop? [r/s]", after=at)
    term.child.sendline("s")
    term.wait_for("STOPPED", after=done)
    assert term.finish() == 1
    check_told(term, done, trace)

    assert "the tool says hi" not in term.screen
    (finished,) = [e for e in events_of(trace) if e["type"] == "tool_finished"]
    assert finished["evidence"]["printed"] == {
        "stdout": "the tool says hi\n",
        "stderr": "",
        "bytes": len("the tool says hi\n"),
    }


# --- (4) a pause-action interrupt: asked on a terminal, a stop without one ----------------------


def test_pause_interrupt_asks_on_a_terminal(spawn: Any, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    manifest = sleeper(tmp_path, seconds=0, interrupts=REPEAT_PAUSES)
    term = spawn(["run", str(manifest), "-o", str(trace)], tmp_path)
    term.wait_for("Paused: shell was proposed 2 times with the same arguments")
    at = term.wait_for("resume or stop? [r/s]")
    term.child.sendline("r")
    term.wait_for("COMPLETED", after=at)
    assert term.finish() == 0

    assert verify(trace)[0] == 0
    assert interrupts_of(trace) == [
        ("anomaly", "pause", None),
        ("operator", "resume", local_identity()),
    ]
    assert [e["type"] for e in events_of(trace)].count("tool_finished") == 2


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Bound an in-process call: SIGALRM raises inside it if it is still running."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds:g} s; it must never wait here")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_stopped_at_once(trace: Path) -> None:
    events = events_of(trace)
    interrupts = [e for e in events if e["type"] == "interrupt"]
    assert [(e["rule"], e["action"], e["by"]) for e in interrupts] == [
        ("repeat_call", "pause", None),
        ("repeat_call", "stop", StopOperator.identity),
    ]
    assert [e["type"] for e in events].count("tool_finished") == 1  # not the repeated call
    assert (events[-1]["status"], events[-1]["failure_class"]) == ("stopped", "anomaly")


def test_pause_interrupt_without_a_terminal_stops_at_once(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    manifest = sleeper(tmp_path, seconds=0, interrupts=REPEAT_PAUSES)
    # empty stdin: a prompt, if one were shown by mistake, would hit EOF rather than wait
    with time_limit(WAIT_S):
        result = CliRunner().invoke(
            app, ["run", str(manifest), "-o", str(trace)], input="", env={"COLUMNS": "250"}
        )
    output = " ".join(ANSI.sub("", result.output).split())
    assert result.exit_code == 1, output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert "resume or stop" not in output
    assert "STOPPED anomaly" in output
    check_stopped_at_once(trace)
    assert verify(trace)[0] == 0


def test_pause_interrupt_in_a_pipe_stops_at_once(tmp_path: Path) -> None:
    """The same through real pipes (no terminal at all), bounded by a timeout."""
    trace = tmp_path / "trace.jsonl"
    manifest = sleeper(tmp_path, seconds=0, interrupts=REPEAT_PAUSES)
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, "run", str(manifest), "-o", str(trace)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "resume or stop" not in done.stdout + done.stderr
    assert "interrupt repeat_call → pause" in done.stderr  # the plain log, on stderr
    check_stopped_at_once(trace)


# --- (5) a second Ctrl-C stops at once --------------------------------------------------------


def test_double_ctrl_c(spawn: Any, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    term = spawn(["run", str(sleeper(tmp_path)), "-o", trace.name], tmp_path)
    at = term.wait_for("in flight: shell command='sleep 2'")
    term.child.send("\x03")
    term.wait_for("Ctrl-C: pausing after the current stage", after=at)
    term.child.send("\x03")
    term.wait_for("interrupted: the run stopped at once", after=at)
    term.wait_for("STOPPED", after=at)
    assert term.finish() == 130
    assert "resume or stop" not in term.screen
    check_told(term, at, trace)

    # The second Ctrl-C lands during the sleep: the loop records the stop and closes the
    # trace on the way out, so it is intact AND finished, not merely intact-but-unfinished.
    code, said = verify(trace)
    assert code == 0, said
    assert "✓ intact" in said
    assert "edited" not in said and "tamper" not in said
    events = events_of(trace)
    types = [e["type"] for e in events]
    # stopped at once: the sleep in flight never finished
    assert types.count("tool_started") == 1 and "tool_finished" not in types, types
    finished = events[-1]
    assert (finished["type"], finished["status"], finished["failure_class"]) == (
        "run_finished",
        "stopped",
        "operator_stop",
    )
    assert finished["reason"] == "interrupted (Ctrl-C twice)"
