"""govrun's kernel: run an agent under the governed loop and prove what it did. No terminal
code: everything a terminal needs arrives as events (observers) or through a port.

The spine lives here — ``ports`` (every non-deterministic answer crosses one), ``loop`` (the
governed step), ``run`` (wiring a run) and ``errors`` — and each concern has its room:
``manifest``, ``trace``, ``govern``, ``tools``, ``models``, ``replay``, ``views``, ``ops``.

The public API for embedders is importable from here (loaded on first use, so importing a
room stays cheap)::

    from govrun.runtime import load_manifest, run_agent, replay, verify_trace

"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "run_agent": "govrun.runtime.run",
    "RunResult": "govrun.runtime.loop",
    "RunInterrupted": "govrun.runtime.loop",
    "RunHalted": "govrun.runtime.loop",
    "RunCrashed": "govrun.runtime.loop",
    "load_manifest": "govrun.runtime.manifest.schema",
    "parse_manifest": "govrun.runtime.manifest.schema",
    "Manifest": "govrun.runtime.manifest.schema",
    "replay": "govrun.runtime.replayer.session",
    "replay_many": "govrun.runtime.replayer.session",
    "assert_replays": "govrun.runtime.replayer.session",
    "ReplayOutcome": "govrun.runtime.replayer.session",
    "Divergence": "govrun.runtime.replayer.session",
    "Record": "govrun.runtime.trace.record",
    "verify_trace": "govrun.runtime.trace.verify",
    "read_trace": "govrun.runtime.trace.reader",
    "diff_traces": "govrun.runtime.views.diff",
    "GovrunError": "govrun.runtime.errors",
    "events": "govrun.runtime.trace.events",
    "AnyEvent": "govrun.runtime.trace.events",
    "Event": "govrun.runtime.trace.events",
    "RunStarted": "govrun.runtime.trace.events",
    "ModelRequest": "govrun.runtime.trace.events",
    "ModelResponse": "govrun.runtime.trace.events",
    "ToolCallProposed": "govrun.runtime.trace.events",
    "PolicyDecision": "govrun.runtime.trace.events",
    "ApprovalRequested": "govrun.runtime.trace.events",
    "ApprovalDecided": "govrun.runtime.trace.events",
    "ToolStarted": "govrun.runtime.trace.events",
    "ToolFinished": "govrun.runtime.trace.events",
    "Verification": "govrun.runtime.trace.events",
    "Interrupt": "govrun.runtime.trace.events",
    "Route": "govrun.runtime.trace.events",
    "Compaction": "govrun.runtime.trace.events",
    "Rollback": "govrun.runtime.trace.events",
    "StepStarted": "govrun.runtime.trace.events",
    "StepFinished": "govrun.runtime.trace.events",
    "RunFinished": "govrun.runtime.trace.events",
}
"""Public name -> the module that defines it."""

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'govrun.runtime' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name == "events" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
