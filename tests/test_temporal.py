"""Governed runs on Temporal (issue 23), against the real dev server and real worker
processes: a run completes on a worker as it would locally; an approval waits in the
workflow for a signed decision or its durable timer; a stop goes through Temporal; a worker
lost mid-run is replaced and the fencing token keeps the lost one from writing again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from govrun.runtime.errors import TraceWriteError
from govrun.runtime.ops.approvals import Pending, signed_decision
from govrun.runtime.ops.temporal import service
from govrun.runtime.ops.temporal.segment import FENCE, fence_for
from govrun.runtime.ops.temporal.service import Target, state
from govrun.runtime.ports import ApprovalRequest
from govrun.runtime.replayer.session import replay
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.record import Record
from govrun.runtime.trace.signing import Signer, init_key, trusted_key_line
from govrun.runtime.trace.verify import verify_trace
from govrun.runtime.trace.writer import TraceWriter
from tests.support.cli import govrun
from tests.support.temporal import Worker
from tests.support.tls_proxy import Pki, TlsFront, make_pki

pytest.importorskip("temporalio")
WAIT_S = 90.0

TICK = '''
import time
from pathlib import Path

def tick(n: int, seconds: float = 0.0) -> str:
    """Record one side effect, then take a while."""
    with open(Path(__file__).with_name("effects.txt"), "a") as f:
        f.write(f"{n}\\n")
    time.sleep(seconds)
    return f"tick {n}"
'''


def agent(folder: Path, *, ticks: int, seconds: float = 0.0, **extra: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sidefx.py").write_text(TICK)
    script = [
        {"tool_calls": [{"name": "tick", "arguments": {"n": i, "seconds": seconds}}]}
        for i in range(ticks)
    ] + [{"content": "ticked"}]
    (folder / "script.yaml").write_text(yaml.safe_dump(script))
    manifest = {
        "name": "ticker",
        "input": "Tick.",
        "model": {"provider": "scripted", "script": "script.yaml"},
        "tools": [{"name": "tick", "python": "sidefx:tick", "risk": "low"}],
        "policy": {"default": "allow"},
        "budgets": {"max_steps": ticks + 5},
        **extra,
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def until(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def events_of(trace: str | Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in Path(trace).read_bytes().splitlines()]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Signer]]:
    found = {}
    for name in ("worker", "bob"):
        home = tmp_path / f"home-{name}"
        found[name] = (home, init_key(home / "keys" / "approver.ed25519"))
    return found


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def workers(
    temporal_server: str,
    queue: str,
    tmp_path: Path,
    keys: dict[str, tuple[Path, Signer]],
) -> Iterator[Callable[[], Worker]]:
    started: list[Worker] = []

    def start() -> Worker:
        w = Worker(temporal_server, queue, tmp_path, keys["worker"][0])
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def submit(address: str, queue: str, manifest: Path, runs: Path, *extra: str) -> str:
    ran = govrun(
        "submit",
        manifest,
        "--temporal",
        address,
        "--task-queue",
        queue,
        "--runs",
        runs,
        "--json",
        *extra,
    )
    assert ran.code == 0, ran.flat
    return str(json.loads(ran.out.strip().splitlines()[-1])["run_id"])


def outcome(address: str, run_id: str) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        from temporalio.client import Client

        client = await Client.connect(address)
        return dict(await client.get_workflow_handle(run_id).result())

    return asyncio.run(asyncio.wait_for(wait(), WAIT_S))


def run_state(address: str, run_id: str) -> dict[str, Any]:
    return asyncio.run(state(Target(address), run_id))


def test_a_submitted_run_completes_on_a_worker_as_it_would_locally(
    tmp_path: Path,
    temporal_server: str,
    queue: str,
    workers: Callable[[], Worker],
) -> None:
    workers()
    manifest = agent(tmp_path / "agent", ticks=3)
    ran = govrun(
        "submit",
        manifest,
        "--temporal",
        temporal_server,
        "--task-queue",
        queue,
        "--runs",
        tmp_path / "runs",
        "--wait",
    )
    assert ran.code == 0, ran.flat
    assert "completed" in ran.flat
    trace = next((tmp_path / "runs").glob("ticker-*/ticker-*.s1a1.jsonl"))
    assert verify_trace(trace).ok
    assert replay(Record.load(trace), tmp_path / "replayed.jsonl").identical
    local = tmp_path / "local.jsonl"
    (tmp_path / "agent" / "effects.txt").unlink()
    assert govrun("run", manifest, "-o", local).code == 0
    same = govrun("diff", trace, local)
    assert same.code == 0, same.flat


def test_an_approval_waits_in_the_workflow_for_bobs_signed_decision(
    tmp_path: Path,
    temporal_server: str,
    queue: str,
    workers: Callable[[], Worker],
    keys: dict[str, tuple[Path, Signer]],
) -> None:
    workers()
    manifest = agent(
        tmp_path / "agent", ticks=2, policy={"default": "ask"}, approvals={"timeout_s": 600}
    )
    run_id = submit(temporal_server, queue, manifest, tmp_path / "runs")
    waiting = until(
        lambda: (s := run_state(temporal_server, run_id))["status"] == "waiting" and s,
        "the run to wait for an approval",
    )
    assert waiting["pending"]["tool"] == "tick"
    listed = govrun("status", "--temporal", temporal_server)
    assert "waiting: tick" in listed.flat
    pending = govrun("approvals", "--temporal", temporal_server)
    assert run_id in pending.flat and "tick" in pending.flat and "600s" in pending.flat
    bob_home, bob = keys["bob"]
    # a decision for another call hash: refused by the segment, kept on record
    wrong = Pending.of(
        ApprovalRequest.model_validate(waiting["pending"]["request"]),
        policy_hash=waiting["pending"]["policy_hash"],
    )
    wrong = Pending(**{**wrong.as_dict(), "call_hash": "0" * 64})
    forged = signed_decision(wrong, "approve", signer=bob, by="bob")
    asyncio.run(service.signal(Target(temporal_server), run_id, "decide", forged))
    until(
        lambda: any(
            h["nonce"] == forged["nonce"] for h in run_state(temporal_server, run_id)["handled"]
        ),
        "the refusal",
    )
    ok = govrun(
        "approve",
        run_id,
        "--as",
        "bob",
        "--reason",
        "ok",
        "--temporal",
        temporal_server,
        env={"GOVRUN_HOME": str(bob_home)},
    )
    assert ok.code == 0, ok.flat
    until(
        lambda: (
            (s := run_state(temporal_server, run_id))["status"] == "waiting"
            and s["pending"]["step"] == 2
        ),
        "the second approval",
    )
    ok = govrun(
        "approve",
        run_id,
        "--as",
        "bob",
        "--temporal",
        temporal_server,
        env={"GOVRUN_HOME": str(bob_home)},
    )
    assert ok.code == 0, ok.flat
    done = outcome(temporal_server, run_id)
    assert done["result"]["status"] == "completed"
    trace = done["trace"]
    notes = [e for e in events_of(trace) if e["type"] == "approval_note"]
    assert len(notes) == 1 and "its call hash is not the pending call's" in notes[0]["detail"]
    decided = [e for e in events_of(trace) if e["type"] == "approval_decided"]
    assert [(d["approver"], d["via"], d["key_fingerprint"]) for d in decided] == [
        ("bob", "remote", bob.fingerprint),
        ("bob", "remote", bob.fingerprint),
    ]
    assert (tmp_path / "agent" / "effects.txt").read_text().split() == ["0", "1"]
    pinned = tmp_path / "trusted.txt"
    pinned.write_text(
        trusted_key_line(keys["worker"][1], "worker") + "\n" + trusted_key_line(bob, "bob") + "\n"
    )
    proof = govrun("verify", trace, "--trusted-keys", pinned)
    assert proof.code == 0, proof.flat
    assert "bob (pinned)" in proof.flat
    assert replay(Record.load(trace), tmp_path / "replayed.jsonl").identical


def test_nobody_answering_fires_the_durable_timer_recorded_as_a_timeout(
    tmp_path: Path,
    temporal_server: str,
    queue: str,
    workers: Callable[[], Worker],
) -> None:
    workers()
    manifest = agent(
        tmp_path / "agent",
        ticks=1,
        policy={"default": "ask"},
        approvals={"timeout_s": 2, "on_timeout": {"low": "approve", "high": "reject"}},
    )
    run_id = submit(temporal_server, queue, manifest, tmp_path / "runs")
    done = outcome(temporal_server, run_id)
    assert done["result"]["status"] == "completed"
    (decided,) = [e for e in events_of(done["trace"]) if e["type"] == "approval_decided"]
    assert (decided["decision"], decided["via"]) == ("approve", "timeout")
    assert "no decision within 2s (on_timeout for low risk: approve)" in decided["reason"]
    assert verify_trace(done["trace"]).ok


def test_ctl_stop_through_temporal_ends_the_run_as_an_operator_stop(
    tmp_path: Path,
    temporal_server: str,
    queue: str,
    workers: Callable[[], Worker],
) -> None:
    workers()
    manifest = agent(
        tmp_path / "agent", ticks=2, policy={"default": "ask"}, approvals={"timeout_s": 600}
    )
    run_id = submit(temporal_server, queue, manifest, tmp_path / "runs")
    until(lambda: run_state(temporal_server, run_id)["status"] == "waiting", "the approval")
    stopped = govrun(
        "ctl",
        "stop",
        run_id,
        "--as",
        "carol",
        "--reason",
        "not today",
        "--temporal",
        temporal_server,
    )
    assert stopped.code == 0, stopped.flat
    done = outcome(temporal_server, run_id)
    assert (done["result"]["status"], done["result"]["failure_class"]) == (
        "stopped",
        "operator_stop",
    )
    assert "carol" in done["result"]["reason"] and "not today" in done["result"]["reason"]
    assert verify_trace(done["trace"]).ok


def test_a_lost_worker_is_replaced_and_fenced_off(
    tmp_path: Path,
    temporal_server: str,
    queue: str,
    workers: Callable[[], Worker],
) -> None:
    first = workers()
    manifest = agent(tmp_path / "agent", ticks=8, seconds=0.6, on_in_flight="rerun")
    effects = tmp_path / "agent" / "effects.txt"
    run_id = submit(temporal_server, queue, manifest, tmp_path / "runs", "--heartbeat", "2")
    until(lambda: effects.exists() and len(effects.read_text().split()) >= 3, "three ticks")
    os.kill(first.process.pid, signal.SIGSTOP)  # the worker is lost (hung, unreachable)
    try:
        workers()
        done = outcome(temporal_server, run_id)
    finally:
        os.kill(first.process.pid, signal.SIGCONT)  # ... and comes back
    assert done["result"]["status"] == "completed", done
    trace = Path(done["trace"])
    assert not trace.name.endswith(".s1a1.jsonl")  # a later attempt finished the run
    assert verify_trace(trace).ok
    ticks = [int(n) for n in effects.read_text().split()]
    assert sorted(set(ticks)) == list(range(8))
    again = [n for n in set(ticks) if ticks.count(n) > 1]
    assert len(again) <= 1  # only a call in flight when the worker was lost ran twice
    events = events_of(trace)
    if again:  # rerun, as the manifest says, and recorded
        assert any("on_in_flight: rerun" in json.dumps(e) for e in events)
    lost = trace.with_name(f"{run_id}.s1a1.jsonl")
    sizes = {p.name: p.stat().st_size for p in trace.parent.glob("*.jsonl")}
    time.sleep(3)  # the revived worker's next append meets the fence; late tasks do not start
    first.stop()
    assert {p.name: p.stat().st_size for p in trace.parent.glob("*.jsonl")} == sizes
    assert lost.name in sizes
    holder = (trace.parent / FENCE).read_text()
    assert trace.name.endswith(holder.rpartition(":")[2] + ".jsonl")
    assert "fenced off" in first.output() or "superseded" in first.output()


def test_the_fencing_token_stops_a_stale_writer_at_its_next_line(tmp_path: Path) -> None:
    (tmp_path / FENCE).write_text("wf:s1a1")
    writer = TraceWriter(tmp_path / "t.jsonl", run_id="r", fence=fence_for(tmp_path, "wf:s1a1"))
    writer.append(ev.RunStarted(agent="a", manifest={}, manifest_hash="0" * 64))
    (tmp_path / FENCE).write_text("wf:s1a2")  # a successor took over
    with pytest.raises(TraceWriteError, match="fenced off: wf:s1a2 owns this run now"):
        writer.append(ev.StepFinished(step=1, outcome="continue"))
    assert len((tmp_path / "t.jsonl").read_bytes().splitlines()) == 1


def test_ctl_pause_waits_in_the_workflow_and_resume_goes_on(
    tmp_path: Path, temporal_server: str, queue: str, workers: Callable[[], Worker]
) -> None:
    workers()
    manifest = agent(tmp_path / "agent", ticks=6, seconds=0.4)
    effects = tmp_path / "agent" / "effects.txt"
    run_id = submit(temporal_server, queue, manifest, tmp_path / "runs")
    until(lambda: effects.exists() and len(effects.read_text().split()) >= 2, "two ticks")
    paused = govrun("ctl", "pause", run_id, "--as", "dana", "--temporal", temporal_server)
    assert paused.code == 0, paused.flat
    until(lambda: run_state(temporal_server, run_id)["status"] == "paused", "the pause")
    ticks = len(effects.read_text().split())
    time.sleep(1.5)
    assert len(effects.read_text().split()) == ticks  # nothing runs while paused
    resumed = govrun("ctl", "resume", run_id, "--as", "dana", "--temporal", temporal_server)
    assert resumed.code == 0, resumed.flat
    done = outcome(temporal_server, run_id)
    assert done["result"]["status"] == "completed", done
    assert sorted(int(n) for n in effects.read_text().split()) == list(range(6))
    interrupts = [e for e in events_of(done["trace"]) if e["type"] == "interrupt"]
    assert [i.get("action") for i in interrupts][:2] == ["pause", "resume"]
    assert "dana" in json.dumps(interrupts)
    assert verify_trace(done["trace"]).ok


# --- TLS, mutual TLS and API keys (a TLS front to the dev server, with a private CA) ----------


@pytest.fixture
def tls_front(temporal_server: str, tmp_path: Path) -> Iterator[tuple[TlsFront, Pki]]:
    pki = make_pki(tmp_path / "pki")
    front = TlsFront(temporal_server, pki, require_client_cert=True)
    yield front, pki
    front.close()


def tls_env(pki: Pki, **extra: str) -> dict[str, str]:
    return {
        "GOVRUN_TEMPORAL_TLS_CA_PATH": str(pki.ca),
        "GOVRUN_TEMPORAL_TLS_CERT_PATH": str(pki.client_cert),
        "GOVRUN_TEMPORAL_TLS_KEY_PATH": str(pki.client_key),
        "GOVRUN_TEMPORAL_TLS_SERVER_NAME": "localhost",
        **extra,
    }


def test_a_run_goes_through_mutual_tls_with_a_private_ca_and_an_api_key(
    tmp_path: Path,
    queue: str,
    tls_front: tuple[TlsFront, Pki],
    keys: dict[str, tuple[Path, Signer]],
) -> None:
    """Worker and submitter both reach the service only through the TLS front, which
    demands a client certificate; the API key rides along and is never printed."""
    front, pki = tls_front
    secret = "tmprl-api-key-7c1e9d"
    env = tls_env(pki, GOVRUN_TEMPORAL_API_KEY=secret)
    worker = Worker(front.address, queue, tmp_path, keys["worker"][0], extra_env=env)
    try:
        manifest = agent(tmp_path / "agent", ticks=2)
        runs = tmp_path / "runs"
        ran = govrun(
            "submit", manifest, "--temporal", front.address, "--task-queue", queue,
            "--runs", runs, "--wait", env=env,
        )  # fmt: skip
        assert ran.code == 0, ran.flat + worker.output()
        assert "completed" in ran.flat
        assert "TLS · API key" in until(lambda: "TLS" in worker.output() and worker.output(), "log")
        assert secret not in ran.flat + worker.output()
        trace = next(runs.glob("ticker-*/ticker-*.s1a1.jsonl"))
        assert verify_trace(trace).ok
        status = govrun("status", "--temporal", front.address, "--json", env=env)
        assert status.code == 0, status.flat
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"GOVRUN_TEMPORAL_TLS_CERT_PATH": None, "GOVRUN_TEMPORAL_TLS_KEY_PATH": None}, "over TLS"),
        ({"GOVRUN_TEMPORAL_TLS_CA_PATH": "stranger"}, "over TLS"),
        ({"GOVRUN_TEMPORAL_TLS_CA_PATH": None}, "over TLS"),  # the system's roots
        ({"GOVRUN_TEMPORAL_TLS_KEY_PATH": None}, "needs both GOVRUN_TEMPORAL_TLS_CERT_PATH"),
        ({"GOVRUN_TEMPORAL_TLS": "maybe"}, "GOVRUN_TEMPORAL_TLS is 'maybe': expected 1 or 0"),
        ({"GOVRUN_TEMPORAL_TLS": "0"}, "GOVRUN_TEMPORAL_TLS is '0' but"),
        ({"GOVRUN_TEMPORAL_TLS_CA_PATH": "missing"}, "no such TLS file"),
    ],
    ids=["no-client-cert", "wrong-ca", "system-roots", "cert-without-key", "bad-switch",
         "tls-off-but-files", "missing-ca"],
)  # fmt: skip
def test_tls_that_cannot_work_is_a_clear_error_that_never_shows_the_api_key(
    tmp_path: Path, tls_front: tuple[TlsFront, Pki], change: dict[str, str | None], said: str
) -> None:
    front, pki = tls_front
    secret = "tmprl-api-key-0b5f2a"
    env: dict[str, str | None] = {**tls_env(pki, GOVRUN_TEMPORAL_API_KEY=secret), **change}
    if env.get("GOVRUN_TEMPORAL_TLS_CA_PATH") == "stranger":
        env["GOVRUN_TEMPORAL_TLS_CA_PATH"] = str(pki.stranger_ca)
    if env.get("GOVRUN_TEMPORAL_TLS_CA_PATH") == "missing":
        env["GOVRUN_TEMPORAL_TLS_CA_PATH"] = str(tmp_path / "nowhere.pem")

    ran = govrun("status", "--temporal", front.address, env=env)

    assert ran.code == 2, ran.flat
    assert said in ran.flat
    assert secret not in ran.flat


def test_plain_grpc_to_a_tls_port_is_a_clear_error(tls_front: tuple[TlsFront, Pki]) -> None:
    front, _ = tls_front
    ran = govrun("status", "--temporal", front.address)
    assert ran.code == 2, ran.flat
    assert f"cannot reach Temporal at {front.address} (namespace default)" in ran.flat
