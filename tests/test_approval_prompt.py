"""The inline approval prompt, driven through a real pseudo-terminal. Needs ``pexpect``.

Each test spawns a tiny driver (``DRIVER``) that builds a ``TerminalApprover`` on a real
rich ``Console`` and calls ``decide()`` on the requests it is given, printing each decision
as a JSON line after a marker. The test types at the terminal like a person would and
asserts on what the terminal showed and on the decisions. Every wait is bounded and every
spawned process is killed at the end of its test whatever happened.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from govrun.cli.approval_prompt import NO_TERMINAL, TerminalApprover
from govrun.runtime.errors import GovrunError
from tests.support.pty import WAIT_S, Screen

try:
    import pexpect
except ImportError:  # reported as a failure by the `spawn` fixture, never skipped
    pexpect = None

ROWS, COLS = 50, 110
IDENTITY = "tester@pty"
MARK = "DECISION "

DRIVER = r"""
import json, sys, time
from rich.console import Console
from rich.live import Live
from rich.text import Text
from govrun.cli.approval_prompt import TerminalApprover
from govrun.runtime.ports import ApprovalRequest

spec = json.loads(sys.argv[1])
console = Console()
live = None
if spec.get("live"):
    frame = Text("LIVE-FRAME before")
    live = Live(frame, console=console, refresh_per_second=20)
    live.start()
    time.sleep(0.3)
approver = TerminalApprover(
    console, identity=spec["identity"], live=live, on_timeout=spec.get("on_timeout")
)
for request in spec["requests"]:
    decision = approver.decide(ApprovalRequest(**request))
    print("DECISION " + decision.model_dump_json(exclude={"signed", "notes"}), flush=True)
if live is not None:
    print("LIVE-STARTED", live.is_started, flush=True)
    frame.plain = "LIVE-FRAME after"
    time.sleep(0.3)
    live.stop()
print("DRIVER-DONE", flush=True)
"""

DIFF = "--- a/notes.txt\n+++ b/notes.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n"


def request(step: int = 2, tool: str = "write", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run_id": "run-1",
        "step": step,
        "call_id": f"call-{step}",
        "tool": tool,
        "arguments": {"path": "notes.txt", "content": "one\nTWO\n"},
        "call_hash": "c0ffee" * 10 + "beef",
        "risk": "medium",
        "rule": "writes-ask",
        "reason": "writes need a person",
        "rationale": "The second line should be upper case.",
        "timeout_s": None,
        "preview": None,
    }
    return base | fields


class Prompt(Screen):
    """One driver process on a pseudo-terminal and everything it has shown so far."""

    def __init__(self, spec: dict[str, Any]) -> None:
        argv = [sys.executable, "-c", DRIVER, json.dumps({"identity": IDENTITY, **spec})]
        super().__init__(argv, rows=ROWS, cols=COLS)

    def answer(self, line: str, *, after: int = 0) -> int:
        """Wait for the next prompt after ``after``, type ``line`` and Enter there."""
        at = self.wait_for("choice [a/r/t/s]: ", after=after)
        self.child.sendline(line)
        return at + 1

    def decisions(self) -> list[dict[str, Any]]:
        """Wait for the driver to finish; the decisions it printed, in order."""
        self.wait_for("DRIVER-DONE")
        deadline = time.monotonic() + WAIT_S
        while not self.eof and time.monotonic() < deadline:
            self._read(0.2)
        return [json.loads(m) for m in re.findall(MARK + r"(\{.*\})", self.screen)]


@pytest.fixture
def spawn() -> Iterator[Any]:
    if pexpect is None:
        pytest.fail(
            "pexpect is not installed: the pseudo-terminal tests need it (pip install pexpect)."
        )
    started: list[Prompt] = []

    def start(*requests: dict[str, Any], **spec: Any) -> Prompt:
        prompt = Prompt({"requests": list(requests), **spec})
        started.append(prompt)
        return prompt

    yield start
    for prompt in started:  # never leave a process behind, whatever the test did
        if prompt.child.isalive():
            prompt.child.close(force=True)


def decided(decision: str, via: str, reason: str) -> dict[str, Any]:
    # a timeout is nobody's decision: it must not be recorded as the person's
    approver = f"timeout ({IDENTITY})" if via == "timeout" else IDENTITY
    return {"decision": decision, "approver": approver, "via": via, "reason": reason}


# --- what the person sees ----------------------------------------------------------------------


def test_panel_shows_the_call_and_its_change_then_approve_once(spawn: Any) -> None:
    term = spawn(request(risk="high", preview=DIFF))
    at = term.wait_for("Approval needed · step 2")
    term.answer("a", after=at)
    assert term.decisions() == [decided("approve", "prompt", "approved once")]

    panel = term.screen[at : term.screen.index("choice [a/r/t/s]", at)]
    for shown in (
        "tool       write  risk high",
        "rule       writes-ask — writes need a person",
        "rationale  The second line should be upper case.",
        '"path": "notes.txt"',
        '"content": "one\\nTWO\\n"',
        "--- a/notes.txt",
        "+++ b/notes.txt",
        "-two",
        "+TWO",
        "call c0ffeec0ffee",
        "t approve every write call for the rest of the run",
    ):
        assert shown in panel, f"{shown!r} not in:\n{panel}"
    assert "\x1b[1;31mhigh" in term.raw or "\x1b[31;1mhigh" in term.raw  # high risk is red
    assert "✓ approved once" in term.screen


def test_model_text_cannot_restyle_the_panel(spawn: Any) -> None:
    """Escape sequences and bidi overrides from the model are shown, never obeyed."""
    sneaky = request(
        arguments={"path": "notes.txt", "content": "x\x1b[2J\x1b[8mhidden\x9b31m"},
        rationale="harmless\u202e txt.exe",
        preview="+line\x1b]0;title\x07\n",
    )
    term = spawn(sneaky)
    term.answer("s")
    assert term.decisions()[0]["decision"] == "stop"
    assert "\x1b[2J" not in term.raw and "\x1b[8m" not in term.raw and "\x1b]0;" not in term.raw
    assert "\u202e" not in term.raw and "\x9b" not in term.raw
    screen = term.screen
    assert '"content": "x\\u001b[2J\\u001b[8mhidden\\u009b31m"' in screen, screen
    assert "harmless\\u202e txt.exe" in screen
    assert "+line\\x1b]0;title\\x07" in screen


def test_live_view_pauses_for_the_prompt_and_resumes(spawn: Any) -> None:
    term = spawn(request(), live=True)
    term.wait_for("LIVE-FRAME before")
    at = term.wait_for("Approval needed · step 2")
    term.answer("a", after=at)
    assert term.decisions() == [decided("approve", "prompt", "approved once")]
    after = term.wait_for("LIVE-STARTED True", after=at)
    term.wait_for("LIVE-FRAME after", after=after)  # the live view rendered again


# --- the choices -------------------------------------------------------------------------------


def test_invalid_keys_ask_again_then_reject_with_a_reason(spawn: Any) -> None:
    term = spawn(request())
    at = term.answer("x")
    term.wait_for("x is not a choice: type a, r, t or s", after=at)
    at = term.answer("", after=at)
    term.wait_for("an empty line is not a choice", after=at)
    at = term.answer("r", after=at)
    term.wait_for("reason (optional; the model is told): ", after=at)
    term.child.sendline("please keep the file as it is")
    assert term.decisions() == [decided("reject", "prompt", "please keep the file as it is")]
    assert "✗ rejected: please keep the file as it is" in term.screen


def test_reject_without_a_reason(spawn: Any) -> None:
    term = spawn(request())
    at = term.answer("r")
    term.wait_for("reason (optional", after=at)
    term.child.sendline("")
    assert term.decisions() == [decided("reject", "prompt", "")]


def test_approve_for_the_rest_of_the_run(spawn: Any) -> None:
    """``t``: later calls of the same tool are approved without asking; other tools ask."""
    term = spawn(
        request(step=2),
        request(step=3, arguments={"path": "other.txt", "content": "x"}),
        request(step=4, tool="read", arguments={"path": "notes.txt"}, risk="low"),
    )
    term.answer("t")
    third = term.wait_for("Approval needed · step 4")
    term.answer("a", after=third)
    standing = f"standing approval for write given at step 2 by {IDENTITY}"
    assert term.decisions() == [
        decided("approve", "prompt", "approved write for the rest of the run"),
        decided("approve", "rule", standing),
        decided("approve", "prompt", "approved once"),
    ]
    screen = term.screen
    assert screen.count("Approval needed") == 2
    assert "Approval needed · step 3" not in screen
    assert "write approved at step 3: standing approval from step 2" in screen


def test_stop(spawn: Any) -> None:
    term = spawn(request())
    term.answer("s")
    assert term.decisions() == [decided("stop", "prompt", "stop chosen at the approval prompt")]
    assert "■ stopping the run" in term.screen


def test_ctrl_c_at_the_prompt_stops(spawn: Any) -> None:
    term = spawn(request(timeout_s=30))
    term.wait_for("choice [a/r/t/s]: ")
    term.child.send("\x03")
    assert term.decisions() == [decided("stop", "prompt", "interrupted at the approval prompt")]
    assert "■ interrupted: stopping the run" in term.screen


# --- timeouts ----------------------------------------------------------------------------------

ON_TIMEOUT = {"low": "approve", "medium": "reject", "high": "reject"}


@pytest.mark.parametrize(
    ("risk", "effect"), [("low", "approve"), ("medium", "reject"), ("high", "reject")]
)
def test_timeout_decides_on_timeout_for_the_risk(spawn: Any, risk: str, effect: str) -> None:
    term = spawn(request(risk=risk, timeout_s=1.5), on_timeout=ON_TIMEOUT)
    first = term.wait_for(f"auto-{effect} in 2s")  # a visible countdown that ticks down
    term.wait_for(f"auto-{effect} in 1s", after=first)
    reason = f"no answer within 1.5s (on_timeout for {risk} risk: {effect})"
    assert term.decisions() == [decided(effect, "timeout", reason)]
    past = {"approve": "approved", "reject": "rejected"}[effect]
    assert f"no answer within 1.5s: auto-{past} ({risk} risk)" in term.screen
    assert "\x1b7" in term.raw  # redrawn in place (cursor saved and restored around it)


def test_timeout_rejects_by_default(spawn: Any) -> None:
    term = spawn(request(risk="low", timeout_s=1))
    term.wait_for("auto-reject in 1s")
    assert term.decisions() == [
        decided("reject", "timeout", "no answer within 1s (on_timeout for low risk: reject)")
    ]


def test_an_answer_before_the_timeout_wins(spawn: Any) -> None:
    term = spawn(request(risk="low", timeout_s=10), on_timeout=ON_TIMEOUT)
    term.wait_for("auto-approve in 10s")
    term.answer("r")
    term.wait_for("reason (optional")
    term.child.sendline("no")
    assert term.decisions() == [decided("reject", "prompt", "no")]


# --- without a terminal ------------------------------------------------------------------------


def test_without_a_terminal_construction_fails(tmp_path: Any) -> None:
    from rich.console import Console

    read_end, write_end = os.pipe()
    try:
        with pytest.raises(GovrunError, match="needs a terminal; use --approve or --approvals"):
            TerminalApprover(Console(), identity=IDENTITY, input_fd=read_end)
    finally:
        os.close(read_end)
        os.close(write_end)

    # the default input, standard input, is not a terminal either: an error, never a wait
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from rich.console import Console\n"
            "from govrun.cli.approval_prompt import TerminalApprover\n"
            "from govrun.runtime.errors import GovrunError\n"
            "try:\n"
            "    TerminalApprover(Console(), identity='x')\n"
            "except GovrunError as exc:\n"
            "    print('refused:', exc)\n",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert done.stdout.strip() == f"refused: {NO_TERMINAL}", done.stdout + done.stderr


def test_on_timeout_must_approve_or_reject() -> None:
    from rich.console import Console

    main, tty = os.openpty()
    try:
        with pytest.raises(GovrunError, match="approve or reject"):
            TerminalApprover(
                Console(), identity=IDENTITY, input_fd=tty, on_timeout={"high": "maybe"}
            )
        assert TerminalApprover(Console(), identity=IDENTITY, input_fd=tty).fd == tty
    finally:
        os.close(main)
        os.close(tty)
