"""Run real agents in a temporary folder: manifest, script and workspace on disk, the real loop.

:func:`run_in` writes a manifest (and a scripted model's turns) into a folder, loads it the way
``govrun run`` does, runs it through :func:`govrun.runtime.run.run_agent` and hands back the
:class:`~govrun.runtime.loop.RunResult` with the trace's typed events. Every run it makes is checked
on the way out: the trace verifies (intact *and* finished with ``run_finished``), reads back
without a torn tail, ends with the status the result reports, holds no value of the
environment it was given (API keys), and replays event for event (``govrun replay``).

Also here: small builders for manifests and scripted turns, event filters, and a Python
tool for the loop tests (``explode`` raises).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from govrun.runtime.loop import RunResult
from govrun.runtime.manifest.schema import Manifest, load_manifest
from govrun.runtime.ports import Approver, Clock, Control, FixedClock, Model, Operator, Tools
from govrun.runtime.replayer.session import assert_replays
from govrun.runtime.run import run_agent
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.canonical import blob_dir
from govrun.runtime.trace.reader import read_trace
from govrun.runtime.trace.verify import verify_trace

WORKSPACE = "ws"
"""The workspace folder inside the run folder; fs tools are rooted here."""
SCRIPT = "script.yaml"
MANIFEST = "agent.yaml"
TASK = "Do the task."
SYSTEM = "You are a careful agent. Stay inside the workspace."
API_KEY = "sk-test-123"
OPENAI_ENV = {"OPENAI_API_KEY": API_KEY}

E = TypeVar("E", bound=ev.Event)

# --- manifests ---------------------------------------------------------------------------


def fs_tools(*kinds: str, root: str = WORKSPACE) -> list[dict[str, Any]]:
    """fs tool specs named ``fs_<kind>`` (``fs_read`` for ``fs.read``), rooted at ``root``."""
    return [
        {"name": f"fs_{kind}", "uses": f"fs.{kind}", "scope": {"roots": [root]}}
        for kind in kinds or ("list", "read", "write")
    ]


def shell_tool(
    commands: Mapping[str, Any], *, name: str = "sh", timeout_s: float = 10, **extra: Any
) -> dict[str, Any]:
    """A ``shell`` tool confined to the workspace, allowing ``commands``."""
    return {
        "name": name,
        "uses": "shell",
        "timeout_s": timeout_s,
        "scope": {"roots": [WORKSPACE], "commands": dict(commands)},
        **extra,
    }


def python_tool(function: str, *, name: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Python tool from this module, e.g. ``python_tool("explode")``."""
    return {"name": name or function, "python": f"tests.support.agents:{function}", **extra}


ALLOW_ALL = {"default": "allow", "rules": []}


def scripted_manifest(
    *, tools: list[dict[str, Any]] | None = None, name: str = "test-agent", **sections: Any
) -> dict[str, Any]:
    """A manifest whose model answers from ``script.yaml``; policy allows everything unless
    ``policy=`` says otherwise."""
    model = {"provider": "scripted", "script": SCRIPT, **sections.pop("model", {})}
    return {
        "name": name,
        "system": SYSTEM,
        "model": model,
        "tools": fs_tools() if tools is None else tools,
        "policy": sections.pop("policy", ALLOW_ALL),
        **sections,
    }


def openai_manifest(
    base_url: str, *, tools: list[dict[str, Any]] | None = None, **sections: Any
) -> dict[str, Any]:
    """A manifest whose model is an OpenAI-compatible server at ``base_url``."""
    model = {
        "provider": "openai",
        "name": "gpt-fake",
        "base_url": base_url,
        "timeout_s": 10,
        **sections.pop("model", {}),
    }
    return {
        "name": "openai-agent",
        "system": SYSTEM,
        "model": model,
        "tools": fs_tools() if tools is None else tools,
        "policy": sections.pop("policy", ALLOW_ALL),
        **sections,
    }


# --- scripted turns ----------------------------------------------------------------------


def call(name: str, arguments: dict[str, Any] | str | None = None, **kw: Any) -> dict[str, Any]:
    """One tool call: ``arguments`` as a mapping (sent as JSON) or a raw string (sent as is)."""
    return {"name": name, "arguments": {} if arguments is None else arguments, **kw}


def calls(*items: dict[str, Any], **turn: Any) -> dict[str, Any]:
    """A turn proposing these tool calls."""
    return {"tool_calls": list(items), **turn}


def answer(text: str = "done", **turn: Any) -> dict[str, Any]:
    """A final turn: text and no tool calls."""
    return {"content": text, **turn}


# --- running -----------------------------------------------------------------------------


def prepare(
    folder: Path,
    manifest: dict[str, Any],
    *,
    script: list[dict[str, Any]] | None = None,
    files: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Manifest:
    """Write the manifest, the script and workspace ``files`` into ``folder``; load it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / WORKSPACE).mkdir(exist_ok=True)
    for rel, text in (files or {}).items():
        target = folder / WORKSPACE / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    if script is not None:
        (folder / SCRIPT).write_text(yaml.safe_dump(script, sort_keys=False), encoding="utf-8")
    path = folder / MANIFEST
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return load_manifest(path, env=dict(env or {}))


def new_trace_path(folder: Path) -> Path:
    """A trace path in ``folder`` that no earlier run used."""
    for n in itertools.count(1):
        path = folder / f"trace-{n}.jsonl"
        if not path.exists():
            return path
    raise AssertionError("unreachable")


def run_in(
    folder: Path,
    manifest: dict[str, Any],
    *,
    script: list[dict[str, Any]] | None = None,
    files: Mapping[str, str] | None = None,
    task: str = TASK,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    model: Model | None = None,
    tools: Tools | None = None,
    approver: Approver | None = None,
    operator: Operator | None = None,
    control: Control | None = None,
) -> tuple[RunResult, list[ev.Event]]:
    """Prepare ``folder``, run the agent through ``run_agent`` and return the result with the
    trace's events, after checking the trace (see :func:`checked_events`)."""
    m = prepare(folder, manifest, script=script, files=files, env=env)
    trace = new_trace_path(folder)
    result = run_agent(
        m,
        task=task,
        trace_path=trace,
        model=model,
        tools=tools,
        approver=approver,
        operator=operator,
        clock=clock or FixedClock(),
        control=control,
        env=dict(env or {}),
        manifest_path=folder / MANIFEST,
    )
    events = checked_events(trace, secrets=(env or {}).values())
    _assert_replays(trace, secrets=(env or {}).values())
    finished = last(events, ev.RunFinished)
    assert (finished.status, finished.failure_class) == (result.status, result.failure_class)
    assert result.trace_path == str(trace)
    return result, events


def _assert_replays(trace: Path, *, secrets: Iterable[str]) -> None:
    """Every run replays event for event, except where the model itself echoed a secret into
    a call (the record holds it redacted): then the replay must say so."""
    try:
        assert_replays(trace, secrets=secrets)
    except AssertionError as exc:
        if b"[redacted]" not in trace_bytes(trace):
            raise
        assert "secret values redacted" in str(exc), exc


def checked_events(trace: str | Path, *, secrets: Iterable[str] = ()) -> list[ev.Event]:
    """The typed events of a finished trace, after asserting that it verifies (intact and
    complete), has no torn tail, ends with ``run_finished``, and that no secret appears in
    its bytes or its blobs."""
    report = verify_trace(trace)
    assert report.ok, report.problem
    assert report.finished
    events, torn = read_trace(trace)
    assert torn is None
    assert [e.seq for e in events] == list(range(len(events)))
    assert isinstance(events[-1], ev.RunFinished)
    assert sum(isinstance(e, ev.RunFinished) for e in events) == 1
    begun, last = [], 0  # a step begins with its first event (schema 2)
    for e in events:
        if e.step > last and not isinstance(e, ev.RunFinished):
            begun.append(e.step)
            last = e.step
    finished = [e.step for e in events if isinstance(e, ev.StepFinished)]
    assert begun == finished, "every step that begins needs exactly one step_finished"
    for secret in secrets:
        assert secret.encode() not in trace_bytes(trace), "a secret reached the trace"
    return events


def trace_bytes(trace: str | Path) -> bytes:
    """The trace file and every sidecar blob, concatenated."""
    data = Path(trace).read_bytes()
    blobs = blob_dir(trace)
    if blobs.is_dir():
        data += b"".join(p.read_bytes() for p in sorted(blobs.iterdir()))
    return data


# --- reading events ----------------------------------------------------------------------


def of_type(events: Iterable[ev.Event], cls: type[E], **where: Any) -> list[E]:
    """Events of class ``cls`` whose fields equal ``where``."""
    return [
        e
        for e in events
        if isinstance(e, cls) and all(getattr(e, k) == v for k, v in where.items())
    ]


def one(events: Iterable[ev.Event], cls: type[E], **where: Any) -> E:
    found = of_type(events, cls, **where)
    assert len(found) == 1, f"expected one {cls.__name__} with {where}; got {len(found)}"
    return found[0]


def last(events: Iterable[ev.Event], cls: type[E]) -> E:
    found = of_type(events, cls)
    assert found, f"no {cls.__name__} in the trace"
    return found[-1]


def types(events: Iterable[ev.Event], *, step: int | None = None) -> list[str]:
    """Event types in order, optionally of one step only."""
    return [e.type for e in events if step is None or e.step == step]  # type: ignore[attr-defined]


def tool_messages(events: Iterable[ev.Event]) -> list[dict[str, Any]]:
    """Tool messages the model was sent, from every ``model_request``'s added messages."""
    return [
        m
        for r in of_type(events, ev.ModelRequest)
        for m in r.messages_added
        if m.get("role") == "tool"
    ]


def told(events: Iterable[ev.Event], call_id: str) -> str:
    """What the model was told about ``call_id`` (the one tool message for it)."""
    found = [m["content"] for m in tool_messages(events) if m["tool_call_id"] == call_id]
    assert len(found) == 1, f"expected one tool message for {call_id}; got {found}"
    return found[0]


def decided(events: Iterable[ev.Event], call_id: str) -> ev.CallDecision:
    """The decision on ``call_id`` (from its one ``tool_call`` event)."""
    return one(events, ev.ToolCall, call_id=call_id).decision


def executed(events: Iterable[ev.Event]) -> list[str]:
    """Call ids that reached ``tool_started`` (the side effect began), in order."""
    return [e.call_id for e in of_type(events, ev.ToolStarted)]


# --- a Python tool used by the loop tests --------------------------------------------------


def explode(message: str) -> str:
    """Always raises: the loop must turn it into a tool_error, not a crash."""
    raise ValueError(f"exploded: {message}")


def interrupted() -> str:
    """Ctrl-C in the middle of a call, as a second Ctrl-C delivers it: the run stops at once."""
    raise KeyboardInterrupt
