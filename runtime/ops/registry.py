"""The run registry: which runs are going on, for `govrun status` and `govrun ctl`.

Decisions:

- **Where.** ``<runs dir>/.registry/<run_id>.json``; the runs dir is ``--runs DIR``, else
  ``$GOVRUN_RUNS``, else ``./runs``. It only locates the registry: traces still go where
  ``-o`` says (default ``./runs``), so a run started anywhere with the same setting is
  found by ``govrun status`` from anywhere.
- **What.** One JSON object per run (:class:`RunEntry`): who runs it where (pid, host,
  user), its trace and control folder (absolute paths), its step and state, and the
  ``govrun ctl`` requests it has handled (``handled``: nonce → what happened), which is how
  ``ctl`` learns its request was acted on.
- **How.** Only the run writes its entry, whole, to a temporary name then ``os.replace``:
  a reader never sees half an entry. Files are 0600 (they name the user and paths).
- **When.** At start; on a step's first ``model_request`` unless :data:`WRITES_PER_S`
  writes happened in the last second (a trace tap: one dict lookup per event, no typed
  event built; a step held back is written at the next stage boundary once allowed); at
  once on every ``interrupt`` (a state change), every handled request and
  ``run_finished``. A write that fails is dropped: the registry is a convenience and never
  stops a run; the trace is the record.
- **Finished runs** keep their entry, state ``finished`` with the run's status, for
  :data:`FINISHED_KEEP_S`: a ``ctl stop`` sees how the run ended and ``status --all``
  lists recent runs. The next run to register sweeps older ones; ``status --prune``
  removes them at once.
- **Crashed runs.** An entry still running, paused or stopping whose pid is gone (checked
  on this host only) and whose trace has no ``run_finished`` is shown as ``crashed``. A
  pid reused by another process after a crash hides the crash until that process ends.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from govrun.runtime.errors import GovrunError
from govrun.runtime.trace import events as ev

RUNS_ENV = "GOVRUN_RUNS"
FOLDER = ".registry"
WRITES_PER_S = 4
"""Step updates are written only while fewer writes than this happened in the last second
(slow runs: every step; fast ones: a few a second). State changes are written at once."""
FINISHED_KEEP_S = 3600.0
"""How long a finished run's entry stays before the next registration sweeps it."""
HANDLED_KEEP = 16
"""How many handled request nonces an entry remembers."""
TAIL_BYTES = 1 << 16

State = Literal["running", "paused", "stopping", "finished"]
Shown = Literal["running", "paused", "stopping", "finished", "crashed"]
LIVE_STATES = ("running", "paused", "stopping")


class Handled(BaseModel):
    """One ``govrun ctl`` request the run has acted on."""

    model_config = ConfigDict(extra="ignore")

    nonce: str
    outcome: str = Field(description="What it did: paused, resumed, stopping, or ignored: why.")


class RunEntry(BaseModel):
    """One run's registry entry, as its run last wrote it."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    agent: str
    pid: int
    host: str
    user: str
    trace: str = Field(description="Absolute path of the trace.")
    control: str = Field(description="Absolute path of the control folder `govrun ctl` writes.")
    started: str
    step: int = 0
    state: State = "running"
    updated: str
    status: str | None = Field(None, description="How the run ended, once finished.")
    failure_class: str | None = None
    handled: list[Handled] = Field(default_factory=list)
    waiting: dict[str, Any] | None = Field(
        None,
        description="The call waiting for a decision from elsewhere (`--approve wait`): "
        "run_id, step, call_id, tool, call_hash, risk, rule, since, deadline, trace.",
    )
    approvals: str | None = Field(
        None, description="Absolute path of the folder `govrun approve` writes to."
    )

    def outcome_of(self, nonce: str) -> str | None:
        return next((h.outcome for h in self.handled if h.nonce == nonce), None)


def runs_dir(explicit: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``explicit``, else ``$GOVRUN_RUNS``, else ``./runs``."""
    env = os.environ if env is None else env
    return Path(explicit or env.get(RUNS_ENV) or "runs")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def age_s(stamp: str, now: datetime | None = None) -> float | None:
    """Seconds since an ISO timestamp the registry wrote (None if unreadable)."""
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return ((now or datetime.now(UTC)) - then).total_seconds()


class Registry:
    """The registry folder of one runs dir."""

    def __init__(self, runs: str | Path) -> None:
        self.runs = Path(runs)
        self.folder = self.runs / FOLDER
        self.skipped: list[str] = []
        """Entry files the last :meth:`entries` could not read, with why."""

    @classmethod
    def default(cls, runs: str | Path | None = None) -> Registry:
        return cls(runs_dir(runs))

    def ensure(self) -> None:
        """Create the folder, or say clearly why it cannot be."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GovrunError(
                f"cannot create the run registry {self.folder}: {exc.strerror}",
                hint=f"Set {RUNS_ENV} (or --runs) to a folder you can write.",
            ) from None

    # --- the run's side -------------------------------------------------------------------

    def register(
        self,
        *,
        run_id: str,
        agent: str,
        trace: str | Path,
        control: str | Path,
        approvals: str | Path | None = None,
    ) -> Registration:
        """Write a new entry for this process's run; sweep long-finished ones first."""
        self.ensure()
        self._sweep()
        stamp = now_iso()
        entry = {
            "run_id": run_id,
            "agent": agent,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "user": _user(),
            "trace": str(Path(trace).resolve()),
            "control": str(Path(control).resolve()),
            "approvals": str(Path(approvals).resolve()) if approvals is not None else None,
            "started": stamp,
            "step": 0,
            "state": "running",
            "updated": stamp,
            "status": None,
            "failure_class": None,
            "handled": [],
        }
        registration = Registration(self.path_of(run_id), entry)
        registration.write(force=True)
        return registration

    def path_of(self, run_id: str) -> Path:
        """The entry's file: the run id, made safe as one file name in the folder."""
        name = re.sub(r"[^A-Za-z0-9._-]", "_", run_id).lstrip(".") or "_"
        return self.folder / f"{name}.json"

    # --- the readers' side ----------------------------------------------------------------

    def entries(self) -> list[RunEntry]:
        """Every readable entry, oldest first; unreadable ones are listed in ``skipped``."""
        self.skipped = []
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            entry = self.read(path)
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: e.started)

    def read(self, path: Path) -> RunEntry | None:
        try:
            return RunEntry.model_validate(orjson.loads(path.read_bytes()))
        except FileNotFoundError:
            return None  # removed between listing and reading
        except OSError as exc:
            self.skipped.append(f"{path.name}: {exc.strerror}")
        except (orjson.JSONDecodeError, ValidationError):
            self.skipped.append(f"{path.name}: not a registry entry")
        return None

    def reload(self, entry: RunEntry) -> RunEntry | None:
        """The entry as its run last wrote it; None once it is gone."""
        return self.read(self.path_of(entry.run_id))

    def resolve(self, ref: str) -> RunEntry:
        """The entry ``ref`` names: a run id, a unique prefix of one, or a trace path."""
        entries = self.entries()
        if not entries:
            raise GovrunError(
                f"no runs are registered in {self.folder}",
                hint=f"Runs started by `govrun run` register in ${RUNS_ENV} or ./runs; "
                "point --runs at the folder they used.",
            )
        exact = [e for e in entries if e.run_id == ref]
        if exact:
            return exact[0]
        candidate = Path(ref).expanduser()
        if candidate.suffix == ".jsonl" or os.sep in ref:
            target = str(candidate.resolve())
            by_trace = [e for e in entries if e.trace == target]
            if by_trace:
                return by_trace[-1]
        prefixed = [e for e in entries if e.run_id.startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            live = [e for e in prefixed if shown_state(e) in LIVE_STATES]
            if len(live) == 1:
                return live[0]
            names = ", ".join(e.run_id for e in prefixed[:6])
            raise GovrunError(f"{ref!r} matches {len(prefixed)} runs: {names}; give more of the id")
        raise GovrunError(
            f"no registered run matches {ref!r} in {self.folder}",
            hint="`govrun status` lists the runs; a run id, a unique prefix or the trace "
            "path names one.",
        )

    def prune(self) -> list[RunEntry]:
        """Remove entries of runs that finished or crashed (and a crashed run's control
        folder); return them."""
        removed = []
        for entry in self.entries():
            shown = shown_state(entry)
            if shown not in ("finished", "crashed"):
                continue
            with contextlib.suppress(FileNotFoundError):
                self.path_of(entry.run_id).unlink()
            if shown == "crashed":
                shutil.rmtree(entry.control, ignore_errors=True)
            removed.append(entry)
        return removed

    def _sweep(self) -> None:
        for entry in self.entries():
            age = age_s(entry.updated)
            if entry.state == "finished" and age is not None and age > FINISHED_KEEP_S:
                with contextlib.suppress(OSError):
                    self.path_of(entry.run_id).unlink()


class Registration:
    """The live entry of the run in this process, and its one writer.

    :attr:`taps` keep it current from the trace; ``govrun ctl`` acknowledgements arrive
    through :meth:`ack`. Nothing here raises into the run.
    """

    def __init__(self, path: Path, entry: dict[str, Any]) -> None:
        self.path = path
        self.entry = entry
        self._due = 0.0
        """When the next step update may be written."""
        self._recent: deque[float] = deque(maxlen=WRITES_PER_S)
        self._dirty = False
        self.broken: str | None = None
        """Why writing stopped, if it did."""

    @property
    def taps(self) -> dict[type[ev.Event], Callable[[dict[str, Any]], None]]:
        return {
            ev.ModelRequest: self._on_step,  # schema 2: a step begins with its request
            ev.Interrupt: self._on_interrupt,
            ev.RunFinished: self._on_finished,
        }

    def _on_step(self, e: dict[str, Any]) -> None:
        self.entry["step"] = e["step"]
        self._dirty = True
        if time.monotonic() >= self._due:
            self.write()

    def _on_interrupt(self, e: dict[str, Any]) -> None:
        action = e.get("action")
        state = {"pause": "paused", "resume": "running", "stop": "stopping"}.get(action or "")
        if state is not None:
            self.entry["state"] = state
        self.entry["step"] = e["step"]
        self.write(force=True)

    def _on_finished(self, e: dict[str, Any]) -> None:
        self.entry.update(
            state="finished", status=e.get("status"), failure_class=e.get("failure_class")
        )
        self.write(force=True)

    def ack(self, nonce: str, outcome: str, *, write: bool = False) -> None:
        """Remember that request ``nonce`` did ``outcome``; written with the next state
        change (the interrupt that records it), or now with ``write``."""
        handled = self.entry["handled"]
        handled.append({"nonce": nonce, "outcome": outcome})
        del handled[:-HANDLED_KEEP]
        self._dirty = True
        if write:
            self.write(force=True)

    def waiting(self, pending: Mapping[str, Any] | None) -> None:
        """The run now waits for a decision on ``pending`` (None: it no longer waits)."""
        if pending is None:
            self.entry.pop("waiting", None)
        else:
            self.entry["waiting"] = {k: v for k, v in pending.items() if k != "request"}
        self.write(force=True)

    def flush(self) -> None:
        """Write a throttled step update once its time has come."""
        if self._dirty and time.monotonic() >= self._due:
            self.write()

    def close(self) -> None:
        """The run is over (a crash of the loop included): the entry says finished."""
        if self.entry["state"] != "finished":
            self.entry["state"] = "finished"
            self.write(force=True)
        elif self._dirty:
            self.write(force=True)

    def discard(self) -> None:
        """The run never started (its trace could not be created): no entry at all."""
        self.broken = "discarded"
        with contextlib.suppress(OSError):
            self.path.unlink()

    def write(self, *, force: bool = False) -> None:
        if self.broken is not None:
            return
        now = time.monotonic()
        if not force and now < self._due:
            self._dirty = True
            return
        self.entry["updated"] = now_iso()
        try:
            write_atomic(self.path, orjson.dumps(self.entry, option=orjson.OPT_SORT_KEYS))
        except OSError as exc:
            self.broken = exc.strerror or str(exc)
            return
        self._dirty = False
        self._recent.append(now)
        if len(self._recent) == WRITES_PER_S:
            self._due = self._recent[0] + 1.0


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to a temporary file beside ``path`` (created ``mode``), then rename it
    over ``path``: readers see the old content or the new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        with open(fd, "wb", closefd=True) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# --- liveness --------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def trace_finished(path: str | Path) -> dict[str, Any] | None:
    """The trace's ``run_finished`` if its last complete line is one (read from the end)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except OSError:
        return None
    end = tail.rfind(b"\n")
    if end < 0:
        return None
    start = tail.rfind(b"\n", 0, end) + 1
    try:
        last = orjson.loads(tail[start:end])
    except orjson.JSONDecodeError:
        return None
    return last if isinstance(last, dict) and last.get("type") == "run_finished" else None


def writer_of(trace: str | Path, registry: Registry | None = None) -> RunEntry | None:
    """The live run writing ``trace``, if the registry knows one (a run still going, or
    paused): how a viewer tells a running run from a crashed one, which both lack
    ``run_finished``."""
    target = Path(trace).resolve()
    try:
        entries = (registry or Registry.default()).entries()
    except OSError:
        return None
    for entry in entries:
        if Path(entry.trace).resolve() == target and shown_state(entry) in LIVE_STATES:
            return entry
    return None


def shown_state(entry: RunEntry) -> Shown:
    """The state to show: the recorded one, unless the run's process is gone — then
    ``finished`` if its trace ended, else ``crashed``. Another host's runs cannot be
    checked and show as recorded."""
    if entry.state == "finished":
        return "finished"
    if entry.host != socket.gethostname() or pid_alive(entry.pid):
        return entry.state
    return "finished" if trace_finished(entry.trace) is not None else "crashed"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
