"""OTLP for real: `govrun export otel` and live runs against receivers on 127.0.0.1 (decoded
with opentelemetry-proto), collectors that are down or hang, and a missing extra."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from govrun.runtime.manifest.schema import load_manifest
from govrun.runtime.run import run_agent
from govrun.runtime.trace.record import Record
from govrun.runtime.views.telemetry.ids import span_id, trace_id
from tests.support.agents import MANIFEST, TASK, WORKSPACE, prepare
from tests.support.cli import govrun, invoke
from tests.support.governed import (
    FILES,
    SCRIPT,
    SECRET_ENV,
    WritesYesDeletesNo,
    governed_manifest,
    run_governed,
)
from tests.support.otlp_receiver import closed_port, hanging_collector, otlp_receiver

REPO = Path(__file__).resolve().parent.parent
QUICKSTART_V1 = REPO / "fixtures" / "traces" / "compat" / "v1.2-quickstart.jsonl"


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_governed(tmp_path_factory.mktemp("governed"))


def test_export_over_otlp_http_twice_gives_identical_ids(governed: Path) -> None:
    with otlp_receiver() as receiver:
        first = govrun("export", "otel", governed, "--endpoint", receiver.base)
        assert first.code == 0, first.flat
        sent = list(receiver.spans)
        second = govrun("export", "otel", governed, "--endpoint", receiver.base)
        assert second.code == 0
        again = receiver.spans[len(sent) :]
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    assert len(sent) == 10 and f"{len(sent)} spans of run" in first.flat
    ids = [(s.trace_id, s.span_id, s.parent_span_id) for s in sent]
    assert ids == [(s.trace_id, s.span_id, s.parent_span_id) for s in again]
    run_id = Record.load(governed).run_id
    assert {s.trace_id for s in sent} == {f"{trace_id(run_id):032x}"}
    root = next(s for s in sent if not s.parent_span_id)
    assert root.span_id == f"{span_id(run_id, 0):016x}"
    assert root.name == "invoke_agent governed"
    assert root.resource["service.name"] == "govrun"
    assert (
        root.attributes["govrun.trace.head"]
        == orjson.loads(governed.read_bytes().splitlines()[-1])["hash"]
    )
    denied = next(s for s in sent if s.attributes.get("govrun.policy.rule") == "no-dotenv")
    assert denied.attributes["error.type"] == "policy_denied" and denied.status == 2  # ERROR
    chat = next(s for s in sent if s.name == "chat scripted")
    assert chat.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    dry = orjson.loads(govrun("export", "otel", governed, "--dry-run").out)
    assert sorted((d["trace_id"], d["span_id"]) for d in dry) == sorted(ids_of(sent))


def ids_of(spans: list[Any]) -> list[tuple[str, str]]:
    return [(s.trace_id, s.span_id) for s in spans]


def test_the_standard_environment_variables_are_honoured() -> None:
    with otlp_receiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base,  # a base URL: /v1/traces is added
            "OTEL_SERVICE_NAME": "triage-bot",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }
        ran = govrun("export", "otel", QUICKSTART_V1, env=env)
    assert ran.code == 0, ran.flat
    assert receiver.paths == ["/v1/traces"]
    assert {s.resource["service.name"] for s in receiver.spans} == {"triage-bot"}
    assert len(receiver.spans) == 12  # a schema-1 trace, read as schema 2


def test_a_collector_that_is_down_is_said_once_with_exit_1(governed: Path) -> None:
    url = closed_port()
    ran = govrun("export", "otel", governed, QUICKSTART_V1, "--endpoint", url, "--timeout", "1")
    assert ran.code == 1
    assert ran.err.count("not exported") == 2  # one line per trace, no retry noise
    assert url in ran.flat and "Traceback" not in ran.flat
    grpc = govrun(
        "export", "otel", governed, "--endpoint", url, "--protocol", "grpc", "--timeout", "1"
    )
    assert grpc.code == 1 and "OTLP/gRPC" in grpc.flat
    for said in (ran, grpc):  # plain words, without retry chatter: the refused connection,
        # or (on a loaded machine, the 1 s export timeout spent first) the timeout
        assert "is a collector listening there?" in said.flat
        assert "retrying" not in said.flat and "HTTPConnectionPool" not in said.flat


def test_bad_input_is_one_clear_error() -> None:
    bad = govrun("export", "otel", QUICKSTART_V1, "--endpoint", "localhost:4318")
    assert bad.code == 2 and "is not an http(s) URL" in bad.flat
    bad = govrun("export", "otel", QUICKSTART_V1, "--headers", "novalue")
    assert bad.code == 2 and "is not KEY=VALUE" in bad.flat
    bad = govrun("export", "otel", QUICKSTART_V1, env={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    assert bad.code == 2 and "not one govrun exports with" in bad.flat
    missing = invoke("export", "otel", "/nonexistent/trace.jsonl", "--dry-run")
    assert missing.code == 2 and "Traceback" not in missing.out + missing.err


# --- the extra is optional -----------------------------------------------------------------

WITHOUT_OTEL = (
    "import sys; sys.modules['opentelemetry'] = None; "  # as if govrun[otel] were not installed
    "from govrun.cli.main import main; sys.argv = ['govrun', *sys.argv[1:]]; main()"
)


def without_otel(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},
    )


def test_without_the_extra_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    done = without_otel("export", "otel", QUICKSTART_V1)
    assert done.returncode == 2
    assert "pip install 'govrun[otel]'" in done.stderr and "Traceback" not in done.stderr
    dry = without_otel("export", "otel", QUICKSTART_V1, "--dry-run")  # needs no SDK
    assert dry.returncode == 0 and len(orjson.loads(dry.stdout)) == 12
    prepare(tmp_path, governed_manifest(telemetry={"otlp": {}}), script=SCRIPT, files=FILES)
    trace = tmp_path / "t.jsonl"
    run = without_otel("run", tmp_path / MANIFEST, "-i", TASK, "-o", trace)
    assert run.returncode == 2 and "pip install 'govrun[otel]'" in run.stderr
    assert "Traceback" not in run.stderr and not trace.exists()  # refused before the trace
    validated = without_otel("validate", tmp_path / MANIFEST)  # as thorough as run
    assert validated.returncode == 2 and "pip install 'govrun[otel]'" in validated.stderr


# --- live ----------------------------------------------------------------------------------


def test_govrun_run_exports_live_to_the_manifests_collector(tmp_path: Path) -> None:
    with otlp_receiver() as receiver:
        manifest = governed_manifest(telemetry={"otlp": {"endpoint": receiver.base}})
        prepare(tmp_path, manifest, script=SCRIPT, files=FILES)
        trace = tmp_path / "live.jsonl"
        ran = govrun("run", tmp_path / MANIFEST, "-i", TASK, "-o", trace, "--approve", "auto")
        live = list(receiver.spans)
    assert ran.code == 1 and "telemetry" not in ran.flat  # stopped by its budget, quietly
    names = sorted(s.name for s in live)
    assert names.count("execute_tool fs_read") == 3 and names[-1] == "invoke_agent governed"
    after = orjson.loads(govrun("export", "otel", trace, "--dry-run").out)
    assert sorted(ids_of(live)) == sorted((d["trace_id"], d["span_id"]) for d in after)
    assert "telemetry" not in Record.load(trace).run_started["manifest"]


def test_run_otel_uses_the_environment(tmp_path: Path) -> None:
    prepare(tmp_path, governed_manifest(), script=SCRIPT, files=FILES)
    with otlp_receiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.base + "/v1/traces"}
        out = tmp_path / "t.jsonl"
        ran = govrun("run", tmp_path / MANIFEST, "-i", TASK, "-o", out, "--otel", env=env)
        assert ran.code == 1
        assert len(receiver.spans) == 10


VOLATILE = {
    "ts",
    "hash",
    "prev",
    "run_id",
    "duration_ms",
    "decided_at",
    "signature",
    "public_key",
    "key_fingerprint",
    "key_source",
    "seal",
    "head",
}


def comparable(trace: Path) -> list[dict[str, Any]]:
    """A trace's events without what differs between two runs of one trajectory."""
    events = []
    for line in trace.read_bytes().splitlines():
        event = {k: v for k, v in orjson.loads(line).items() if k not in VOLATILE}
        if event["type"] == "run_finished":
            event["totals"] = {k: v for k, v in event["totals"].items() if k != "duration_ms"}
        events.append(event)
    return events


def run_watched(folder: Path, name: str, endpoint: str | None) -> tuple[Path, float, list[str]]:
    """The governed run in ``folder`` (the same workspace each time), exporting to
    ``endpoint`` with a 1 s timeout, or not at all: its trace, the run's recorded
    duration, and what telemetry said."""
    (folder / WORKSPACE / "report.md").unlink(missing_ok=True)
    telemetry = {"otlp": {"endpoint": endpoint, "timeout_s": 1}} if endpoint else None
    extra = {"telemetry": telemetry} if telemetry else {}
    prepare(folder, governed_manifest(**extra), script=SCRIPT, files=FILES, env=SECRET_ENV)
    said: list[str] = []
    trace = folder / f"{name}.jsonl"
    started = time.monotonic()
    run_agent(
        load_manifest(folder / MANIFEST, env=SECRET_ENV),
        task=TASK,
        trace_path=trace,
        approver=WritesYesDeletesNo(),
        env=SECRET_ENV,
        on_telemetry_problem=said.append,
    )
    wall = time.monotonic() - started
    assert wall < 15, f"the run with telemetry to {endpoint} took {wall:.1f}s"
    finished = orjson.loads(trace.read_bytes().splitlines()[-1])
    return trace, float(finished["totals"]["duration_ms"]), said


def test_a_collector_that_is_down_or_hangs_never_slows_or_alters_the_run(
    tmp_path: Path,
) -> None:
    plain, plain_ms, said = run_watched(tmp_path, "plain", None)
    assert said == []
    with hanging_collector() as hanging:
        for name, endpoint in (("down", closed_port()), ("hanging", hanging)):
            trace, ms, said = run_watched(tmp_path, name, endpoint)
            assert comparable(trace) == comparable(plain), name
            assert ms < plain_ms + 1000, (name, ms, plain_ms)  # generous: export is off-thread
            assert len(said) == 1, said  # said once, not per batch or retry
            assert endpoint in said[0]
    assert "could not export" in said[0] or "did not take" in said[0]


def test_a_resume_under_a_watched_manifest_exports_live_and_links_its_parent(
    tmp_path: Path,
) -> None:
    stopped = run_governed(tmp_path / "first")  # stopped by its step budget
    parent = Record.load(stopped).run_id
    with otlp_receiver() as receiver:
        watched = governed_manifest(
            budgets={"max_steps": 10}, telemetry={"otlp": {"endpoint": receiver.base}}
        )
        prepare(tmp_path / "first", watched, script=SCRIPT)
        out = tmp_path / "resumed.jsonl"
        ran = govrun("resume", stopped, "--manifest", tmp_path / "first" / MANIFEST, "-o", out)
        spans = list(receiver.spans)
    assert ran.code == 0, ran.flat
    root = next(s for s in spans if not s.parent_span_id)
    assert root.links == [(f"{trace_id(parent):032x}", f"{span_id(parent, 0):016x}")]
    assert root.attributes["govrun.parent.kind"] == "resume"
    assert root.attributes["govrun.run.status"] == "completed"
    assert root.trace_id == f"{trace_id(Record.load(out).run_id):032x}"


def test_a_crashed_or_altered_trace_exports_with_a_warning() -> None:
    traces = REPO / "fixtures" / "traces"
    ran = govrun("export", "otel", traces / "tampered.jsonl", traces / "torn.jsonl", "--dry-run")
    assert ran.code == 0
    assert "tampered.jsonl was altered" in ran.err and "torn.jsonl is torn" in ran.err
    roots = [s for s in orjson.loads(ran.out) if s["parent_span_id"] is None]
    assert [r["attributes"]["govrun.run.status"] for r in roots] == ["completed", "unfinished"]


@pytest.mark.parametrize(
    ("logged", "said"),
    [
        (
            "Transient error HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded "
            'with url: /v1/traces (Caused by NewConnectionError("HTTPConnection(host='
            "'127.0.0.1', port=1): Failed to establish a new connection: [Errno 111] Connection "
            'refused")) encountered while exporting spans batch, retrying in 0.90s.',
            "connection refused: is a collector listening there?",
        ),
        (
            "Transient error StatusCode.UNAVAILABLE encountered while exporting traces to "
            "127.0.0.1:1, retrying in 0.80s. Error details: failed to connect to all addresses; "
            "last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: "
            "Connection refused",
            "connection refused: is a collector listening there?",
        ),
        ("[Errno -2] Name or service not known", "the host name does not resolve"),
        ("Failed to export batch code: 404, reason: not found", "Failed to export batch code"),
    ],
)
def test_an_exporter_failure_is_said_in_plain_words(logged: str, said: str) -> None:
    from govrun.runtime.views.telemetry.sdk import _plain

    assert _plain(logged).startswith(said)
    assert "retrying" not in _plain(logged)
