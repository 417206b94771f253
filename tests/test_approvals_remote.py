"""Approvals from anywhere (issue 21): a run started with `--approve wait` and no terminal
waits at the gate; other processes list what waits, and approve or reject it with their own
keys. Real subprocesses, real keys, a real HTTP notifier, a real pseudo-terminal."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
import yaml

from govrun.runtime.ops.approvals import read_pending, send_decision
from govrun.runtime.ops.registry import Registry, RunEntry
from govrun.runtime.replayer.session import replay
from govrun.runtime.trace.record import Record
from govrun.runtime.trace.signing import Signer, init_key, trusted_key_line
from govrun.runtime.trace.verify import verify_trace
from tests.support.cli import govrun
from tests.support.pty import Screen

REPO = Path(__file__).resolve().parent.parent
ENTRY = "from govrun.cli.main import main; main()"
WAIT_S = 30.0

AGENT: dict[str, Any] = {
    "name": "gatekept",
    "input": "Tidy up.",
    "model": {"provider": "scripted", "script": "script.yaml"},
    "tools": [
        {"name": "note", "python": "tests.support.pytools:greet", "risk": "low"},
        {"name": "purge", "python": "tests.support.pytools:greet", "risk": "high"},
    ],
    "policy": {"default": "ask"},
    "approvals": {"timeout_s": 60},
}
SCRIPT = [
    {"content": "First a note.", "tool_calls": [{"name": "note", "arguments": {"name": "hi"}}]},
    {"content": "Now purge.", "tool_calls": [{"name": "purge", "arguments": {"name": "all"}}]},
    {"content": "done"},
]


def until(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def events_of(trace: Path) -> list[dict[str, Any]]:
    data = trace.read_bytes() if trace.exists() else b""
    return [orjson.loads(line) for line in data.split(b"\n")[:-1]]


class Waiting:
    """`govrun run --approve wait` in a subprocess without a terminal."""

    def __init__(
        self,
        folder: Path,
        agent: dict[str, Any],
        *,
        keys: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "script.yaml").write_text(yaml.safe_dump(SCRIPT))
        manifest = folder / "agent.yaml"
        manifest.write_text(yaml.safe_dump(agent))
        self.folder, self.runs = folder, folder / "runs"
        self.trace = folder / "t.jsonl"
        self.log = folder / "run.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "GOVRUN_RUNS": str(self.runs),
            "GOVRUN_HOME": str(keys),
            **(env or {}),
        }
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    ENTRY,
                    "run",
                    str(manifest),
                    "-o",
                    str(self.trace),
                    "--approve",
                    "wait",
                ],
                cwd=folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def entry(self) -> RunEntry | None:
        found = [e for e in Registry(self.runs).entries() if e.trace == str(self.trace.resolve())]
        return found[0] if found else None

    def waiting_on(self, tool: str) -> RunEntry:
        def check() -> RunEntry | None:
            e = self.entry()
            return e if e is not None and (e.waiting or {}).get("tool") == tool else None

        return until(check, f"the run to wait on {tool}:\n{self.output()}")

    def decide(self, *args: str, as_home: Path) -> Any:
        return govrun(*args, "--runs", self.runs, env={"GOVRUN_HOME": str(as_home)})

    def exit_code(self) -> int:
        try:
            return self.process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"the run did not end:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def people(tmp_path: Path) -> dict[str, tuple[Path, Signer]]:
    """Keys for the runner (the run's own key signs its seal), bob and mallory."""
    found = {}
    for name in ("runner", "bob", "mallory"):
        home = tmp_path / f"home-{name}"
        found[name] = (home, init_key(home / "keys" / "approver.ed25519"))
    return found


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Waiting]]:
    runs: list[Waiting] = []
    yield runs
    for run in runs:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def trusted(tmp_path: Path, *who: tuple[str, Signer]) -> Path:
    path = tmp_path / "trusted.txt"
    path.write_text("".join(trusted_key_line(s, name) + "\n" for name, s in who))
    return path


def test_a_headless_run_waits_and_bob_approves_then_rejects_from_another_process(
    tmp_path: Path, people: dict[str, tuple[Path, Signer]], started: list[Waiting]
) -> None:
    run = Waiting(tmp_path / "run", AGENT, keys=people["runner"][0])
    started.append(run)
    entry = run.waiting_on("note")
    assert entry.state == "running"

    listed = govrun("approvals", "--runs", run.runs)
    assert "note" in listed.flat and "low" in listed.flat and entry.run_id[:12] in listed.flat
    status = govrun("status", "--runs", run.runs)
    assert "waiting: note" in status.flat
    shown = run.decide("approvals", "show", entry.run_id, as_home=people["bob"][0])
    assert "Approval needed" in shown.flat and '"name": "hi"' in shown.flat
    assert "First a note." in shown.flat  # the model's reason

    bob_home, bob = people["bob"]
    ok = run.decide("approve", "gatekept", "--as", "bob", "--reason", "fine", as_home=bob_home)
    assert ok.code == 0, ok.flat
    assert f"approved note (call_0_0) at step 1 of {entry.run_id}" in ok.flat

    run.waiting_on("purge")
    no = run.decide(
        "reject", str(run.trace), "--as", "bob", "--reason", "keep everything", as_home=bob_home
    )
    assert no.code == 0, no.flat
    assert run.exit_code() == 0, run.output()

    events = events_of(run.trace)
    decided = [e for e in events if e["type"] == "approval_decided"]
    assert [(d["tool"], d["decision"], d["via"], d["approver"]) for d in decided] == [
        ("note", "approve", "remote", "bob"),
        ("purge", "reject", "remote", "bob"),
    ]
    assert {d["key_fingerprint"] for d in decided} == {bob.fingerprint}
    results = [e for e in events if e["type"] == "tool_finished"]
    assert [r["tool"] for r in results] == ["note"]  # the rejected purge never ran
    told = [e for e in events if e["type"] == "model_request" and e["step"] == 3]
    assert "bob rejected this call: keep everything" in json.dumps(told[0]["messages_added"])

    pinned = trusted(tmp_path, ("runner", people["runner"][1]), ("bob", bob))
    proof = govrun("verify", run.trace, "--trusted-keys", pinned)
    assert proof.code == 0, proof.flat
    assert f"{bob.fingerprint} bob (pinned)" in proof.flat
    assert replay(Record.load(run.trace), tmp_path / "replayed.jsonl").identical
    assert not (tmp_path / "run" / "t.jsonl.approvals.d").exists()  # gone with the run


def test_nothing_pending_and_no_key_are_clear_errors(
    tmp_path: Path, people: dict[str, tuple[Path, Signer]], started: list[Waiting]
) -> None:
    run = Waiting(tmp_path / "run", AGENT, keys=people["runner"][0])
    started.append(run)
    entry = run.waiting_on("note")
    nokey = run.decide("approve", entry.run_id, as_home=tmp_path / "nobody")
    assert nokey.code == 2 and "govrun keys init" in nokey.flat
    wrong = run.decide("approve", entry.run_id, "call_9_9", as_home=people["bob"][0])
    assert wrong.code == 1 and "is not waiting on call_9_9" in wrong.flat
    run.process.kill()


def test_unanswered_calls_time_out_per_risk_level(
    tmp_path: Path, people: dict[str, tuple[Path, Signer]], started: list[Waiting]
) -> None:
    agent = {
        **AGENT,
        "approvals": {"timeout_s": 1, "on_timeout": {"low": "approve", "high": "reject"}},
    }
    run = Waiting(tmp_path / "run", agent, keys=people["runner"][0])
    started.append(run)
    began = time.monotonic()
    assert run.exit_code() == 0, run.output()
    assert time.monotonic() - began < 20
    decided = [e for e in events_of(run.trace) if e["type"] == "approval_decided"]
    assert [(d["tool"], d["decision"], d["via"]) for d in decided] == [
        ("note", "approve", "timeout"),
        ("purge", "reject", "timeout"),
    ]
    assert all(d["approver"].startswith("timeout (") for d in decided)
    assert "no decision within 1s (on_timeout for high risk: reject)" in decided[1]["reason"]
    assert verify_trace(run.trace).ok


def test_refused_decisions_are_recorded_and_never_applied(
    tmp_path: Path, people: dict[str, tuple[Path, Signer]], started: list[Waiting]
) -> None:
    runner, bob, mallory = (people[n][1] for n in ("runner", "bob", "mallory"))
    keys = trusted(tmp_path, ("runner", runner), ("bob", bob))
    agent = {
        **AGENT,
        "approvals": {"timeout_s": 60, "trusted_keys": str(keys)},
        "secrets": ["DEPLOY_TOKEN"],
    }
    token = "dpl-7f3a9c21e5"
    run = Waiting(tmp_path / "run", agent, keys=people["runner"][0], env={"DEPLOY_TOKEN": token})
    started.append(run)
    entry = run.waiting_on("note")
    folder = Path(str(entry.approvals))
    pending = read_pending(folder)
    assert pending is not None

    # mallory's key is not in approvals.trusted_keys
    refused = run.decide("approve", entry.run_id, "--as", "mallory", as_home=people["mallory"][0])
    assert refused.code == 1 and "not in approvals.trusted_keys" in refused.flat
    # a decision for another call hash, signed by bob
    other = pending.__class__(**{**pending.as_dict(), "call_hash": "0" * 64})
    send_decision(folder, other, "approve", signer=bob, by="bob")
    # a forged file: bob's name and key, a signature that is not his
    nonce = send_decision(folder, pending, "reject", signer=mallory, by="bob")
    forged = next((folder / "decisions").glob(f"*-{nonce}.json"))
    data = orjson.loads(forged.read_bytes())
    data.update(public_key=bob.public_key, key_fingerprint=bob.fingerprint)
    forged.write_bytes(orjson.dumps(data))
    (folder / "decisions" / "junk.json").write_text("{not json")
    # bob quotes the run's secret: the trace would have to redact it, breaking his signature
    send_decision(folder, pending, "approve", signer=bob, by="bob", reason=f"token {token} ok")
    # not files: a folder, a FIFO no one writes (reading it would block the run), a link
    (folder / "decisions" / "a-folder").mkdir()
    os.mkfifo(folder / "decisions" / "a-fifo")
    (folder / "decisions" / "a-link").symlink_to(forged)
    time.sleep(0.5)
    assert run.entry() is not None and (run.entry().waiting or {}).get("tool") == "note", (
        run.output()
    )
    # bob's real approval applies; a second one for the same call is refused
    nonce_1 = send_decision(folder, pending, "approve", signer=bob, by="bob")
    nonce_2 = send_decision(folder, pending, "approve", signer=bob, by="bob")
    run.waiting_on("purge")
    handled = {h.nonce: h.outcome for h in run.entry().handled}
    assert handled[nonce_1] == "applied: approve"
    assert handled[nonce_2].startswith("refused: the call was already decided")
    run.decide("reject", entry.run_id, "--as", "bob", "--reason", "no", as_home=people["bob"][0])
    assert run.exit_code() == 0, run.output()

    events = events_of(run.trace)
    notes = [
        e["detail"] for e in events if e["type"] == "approval_note" and e["call_id"] == "call_0_0"
    ]
    joined = "\n".join(notes)
    assert "not in approvals.trusted_keys" in joined
    assert "its call hash is not the pending call's" in joined
    assert "its signature does not verify (forged or altered)" in joined
    assert "unreadable decision file junk.json: not JSON" in joined
    assert "its reason or approver name quotes a secret value of this run" in joined
    assert token.encode() not in run.trace.read_bytes()
    assert "unreadable decision file a-folder: not a regular file" in joined
    assert "unreadable decision file a-fifo: not a regular file" in joined
    assert "unreadable decision file a-link: a symbolic link, not a decision file" in joined
    assert joined.count("a-folder") == 1  # said once, and gone
    assert "the call was already decided (approve by bob)" in joined
    decided = [e for e in events if e["type"] == "approval_decided"]
    assert [(d["tool"], d["decision"], d["approver"]) for d in decided] == [
        ("note", "approve", "bob"),
        ("purge", "reject", "bob"),
    ]
    assert govrun("verify", run.trace, "--trusted-keys", keys).code == 0
    assert replay(Record.load(run.trace), tmp_path / "replayed.jsonl").identical


class Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    delay = 0.0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(orjson.loads(body))
        time.sleep(Hook.delay)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.received = []
    Hook.delay = 0.0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_a_notifier_command_and_url_are_called_once_per_waiting_call(
    tmp_path: Path, people: dict[str, tuple[Path, Signer]], started: list[Waiting], hook: str
) -> None:
    said = tmp_path / "said.txt"
    script = tmp_path / "notify.py"
    script.write_text(
        f"import sys\nopen({str(said)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
    )
    notify = {
        "command": [sys.executable, str(script), "{run}", "{call}", "{tool}", "{risk}", "{trace}"],
        "url": hook,
        "timeout_s": 3,
    }
    agent = {**AGENT, "approvals": {"timeout_s": 60, "notify": notify}}
    run = Waiting(tmp_path / "run", agent, keys=people["runner"][0])
    started.append(run)
    entry = run.waiting_on("note")
    until(lambda: said.exists() and Hook.received, "the notifiers")
    bob_home = people["bob"][0]
    assert run.decide("approve", entry.run_id, "--as", "bob", as_home=bob_home).code == 0
    run.waiting_on("purge")
    assert run.decide("approve", entry.run_id, "--as", "bob", as_home=bob_home).code == 0
    assert run.exit_code() == 0, run.output()

    lines = said.read_text().splitlines()
    assert lines == [
        f"{entry.run_id} call_0_0 note low {run.trace.resolve()}",
        f"{entry.run_id} call_1_0 purge high {run.trace.resolve()}",
    ]
    assert [(h["call"], h["tool"], h["risk"], h["step"]) for h in Hook.received] == [
        ("call_0_0", "note", "low", 1),
        ("call_1_0", "purge", "high", 2),
    ]
    assert Hook.received[0]["arguments"] == {"name": "hi"}
    assert len(Hook.received[0]["call_hash"]) == 64
    notes = [e for e in events_of(run.trace) if e["type"] == "approval_note"]
    assert [n["ok"] for n in notes if n["kind"] == "notified"] == [True, True, True, True]


def test_a_failing_or_hanging_notifier_never_delays_the_run(
    tmp_path: Path, people: dict[str, tuple[Path, Signer]], started: list[Waiting], hook: str
) -> None:
    Hook.delay = 30.0  # the URL hangs
    notify = {
        "command": [sys.executable, "-c", "import sys; sys.exit(3)"],
        "url": hook,
        "timeout_s": 1,
    }
    agent = {
        **AGENT,
        "approvals": {"timeout_s": 2, "on_timeout": "approve", "notify": notify},
    }
    run = Waiting(tmp_path / "run", agent, keys=people["runner"][0])
    started.append(run)
    began = time.monotonic()
    assert run.exit_code() == 0, run.output()
    assert time.monotonic() - began < 20
    notes = [e for e in events_of(run.trace) if e["type"] == "approval_note"]
    details = " | ".join(n["detail"] for n in notes)
    assert "exited 3" in details
    assert "no answer within 1s" in details
    assert all(n["ok"] is False for n in notes)
    assert verify_trace(run.trace).ok


def test_the_prompt_and_a_remote_decision_race_and_exactly_one_wins(
    tmp_path: Path, people: dict[str, tuple[Path, Signer]]
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "script.yaml").write_text(yaml.safe_dump(SCRIPT[:1] + SCRIPT[2:]))
    (folder / "agent.yaml").write_text(yaml.safe_dump({**AGENT, "approvals": {"mode": "wait"}}))
    runs, trace = folder / "runs", folder / "t.jsonl"
    saved = dict(os.environ)
    os.environ.update(
        GOVRUN_RUNS=str(runs), GOVRUN_HOME=str(people["runner"][0]), PYTHONPATH=str(REPO)
    )
    try:
        screen = Screen(
            [sys.executable, "-c", ENTRY, "run", "agent.yaml", "-o", str(trace)],
            rows=50,
            cols=120,
            cwd=folder,
        )
        screen.wait_for("choice [a/r/t/s]")
        screen.wait_for("also waiting for: govrun approve")
        entry = until(lambda: next(iter(Registry(runs).entries()), None), "the registry entry")
        ok = govrun(
            "approve",
            entry.run_id,
            "--as",
            "bob",
            "--runs",
            runs,
            env={"GOVRUN_HOME": str(people["bob"][0])},
        )
        assert ok.code == 0, ok.flat
        screen.wait_for("decided elsewhere: approved by bob")
        screen.child.sendline("a")  # too late: the prompt is gone
        screen.wait_for("COMPLETED")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    decided = [e for e in events_of(trace) if e["type"] == "approval_decided"]
    assert [(d["decision"], d["via"], d["approver"]) for d in decided] == [
        ("approve", "remote", "bob")
    ]
    assert verify_trace(trace).ok


def test_an_embedded_run_waits_as_its_manifest_says(
    tmp_path: Path, people: dict[str, tuple[Path, Signer]]
) -> None:
    """run_agent without an approver takes `approvals.mode: wait` from the manifest; the
    decision reaches it through the folder next to its trace, registry or not."""
    from govrun.runtime.manifest.schema import load_manifest
    from govrun.runtime.ops.approvals import approvals_folder
    from govrun.runtime.run import run_agent

    folder = tmp_path / "embedded"
    folder.mkdir()
    (folder / "script.yaml").write_text(yaml.safe_dump(SCRIPT[:1] + SCRIPT[2:]))
    (folder / "agent.yaml").write_text(
        yaml.safe_dump({**AGENT, "approvals": {"mode": "wait", "timeout_s": 60}})
    )
    trace = folder / "t.jsonl"
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(
            run_agent(load_manifest(folder / "agent.yaml"), trace_path=trace)
        )
    )
    thread.start()
    pending = until(lambda: read_pending(approvals_folder(trace)), "the pending call")
    send_decision(approvals_folder(trace), pending, "approve", signer=people["bob"][1], by="bob")
    thread.join(WAIT_S)
    assert results and results[0].status == "completed"
    (decided,) = [e for e in events_of(trace) if e["type"] == "approval_decided"]
    assert (decided["approver"], decided["via"]) == ("bob", "remote")
