"""Steering a run from another terminal (`govrun ctl`): a control folder next to the trace
that the loop polls between stages, and an operator that waits for `ctl` after `ctl`
paused the run.

The protocol, as built:

- **Channel.** A spool folder ``<trace>.control.d/`` (0700: only the run's user can steer
  it), one JSON file per request ``{action, by, reason, at, nonce}``, written under a dot
  name and renamed in, named ``<at in ns, 20 digits>-<nonce>.json`` so names sort in
  request order. One file per request rather than one control file: two requests in
  quick succession are both kept, with no lock and no read-modify-write.
- **Polling.** :meth:`FileControl.take` runs at every stage boundary, so it is a flag check
  almost always: at most every :data:`POLL_S` it makes one ``os.stat`` of the folder and
  lists it only when its mtime changed — or is too recent to trust, since two changes
  within the filesystem's timestamp granularity leave it unchanged (git's "racy" rule).
- **Consumption.** Requests are read in name order and deleted, and the run registry
  records what each did (``handled``), which is how ``ctl`` learns it was acted on. A
  pause or stop becomes the loop's operator ``interrupt`` with ``by`` and the reason; a
  resume while running is ignored (acknowledged as such). A malformed file is moved aside
  as ``.rejected-<name>`` and skipped: nothing in the folder can crash the run.
- **Pauses from ctl** wait for ``ctl resume`` or ``ctl stop`` (:class:`ControlledOperator`),
  even without a terminal — a run nobody could resume is only stopped on pauses that did
  not come from ``ctl``. On a terminal the prompt may answer first.
- **End.** Requests left when the run ends are acknowledged as ignored and the folder is
  removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from govrun.runtime.errors import GovrunError
from govrun.runtime.ports import Control, Operator

if TYPE_CHECKING:
    from govrun.runtime.ops.registry import Registration

Action = Literal["pause", "resume", "stop"]
ACTIONS: tuple[Action, ...] = ("pause", "resume", "stop")
POLL_S = 0.05
"""The control folder is looked at no more often than this while the run is going."""
WAIT_S = 0.1
"""How often a run paused by ``ctl`` looks for the answer."""
RACY_NS = 2_000_000_000
"""An mtime this recent may hide a later change: list the folder anyway."""
MAX_REQUEST_BYTES = 16 * 1024
MAX_BY = 200
MAX_REASON = 2000

_monotonic = time.monotonic


def control_folder(trace: str | Path) -> Path:
    """Where requests for the run writing ``trace`` go: ``run.jsonl.control.d/``."""
    p = Path(trace)
    return p.with_name(p.name + ".control.d")


@dataclass(frozen=True)
class Request:
    """One operator request from outside the run."""

    action: Action
    by: str
    reason: str
    nonce: str
    at: str = ""

    def as_interrupt(self) -> str:
        """The reason the pause or stop is recorded with."""
        return f"{self.action} requested by {self.by} (govrun ctl)" + _note(self.reason)

    def as_answer(self) -> str:
        """The reason a resume or stop of a paused run is recorded with."""
        did = "resumed" if self.action == "resume" else "stopped"
        return f"{self.by} {did} the run (govrun ctl)" + _note(self.reason)


class BadRequest(ValueError):
    """A request file that cannot be acted on; ``nonce`` if it had a readable one."""

    def __init__(self, why: str, nonce: str | None = None) -> None:
        super().__init__(why)
        self.nonce = nonce


def read_request(path: Path) -> Request:
    """Parse one request file; :class:`BadRequest` says why it cannot be used."""
    with open(path, "rb") as f:
        raw = f.read(MAX_REQUEST_BYTES + 1)
    if len(raw) > MAX_REQUEST_BYTES:
        raise BadRequest(f"larger than {MAX_REQUEST_BYTES} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("not a JSON object")
    nonce = data.get("nonce")
    nonce = nonce if isinstance(nonce, str) and 0 < len(nonce) <= 64 else None
    action, by, reason = data.get("action"), data.get("by"), data.get("reason", "")
    if action not in ACTIONS:
        raise BadRequest(f"unknown action {action!r}; expected pause, resume or stop", nonce)
    if not isinstance(by, str) or _bad_text(by, MAX_BY) or not by.strip():
        raise BadRequest(f"`by` must be a name of 1 to {MAX_BY} printable characters", nonce)
    if reason is None:
        reason = ""
    if not isinstance(reason, str) or _bad_text(reason, MAX_REASON):
        raise BadRequest(
            f"`reason` must be one line of at most {MAX_REASON} printable characters", nonce
        )
    if nonce is None:
        raise BadRequest("no nonce")
    at = data.get("at")
    return Request(action, by.strip(), reason.strip(), nonce, at if isinstance(at, str) else "")


def send_request(folder: Path, action: Action, *, by: str, reason: str = "") -> Request:
    """Queue a request for the run listening on ``folder`` (the `govrun ctl` side)."""
    if _bad_text(by, MAX_BY) or not by.strip():
        raise GovrunError(f"--as must be a name of 1 to {MAX_BY} printable characters")
    if _bad_text(reason, MAX_REASON):
        raise GovrunError(f"--reason must be one line of at most {MAX_REASON} printable characters")
    if not folder.is_dir():
        raise GovrunError(
            f"the run has no control folder at {folder}: it has finished, or it was not "
            "started by a govrun that can be steered."
        )
    from govrun.runtime.ops.registry import now_iso, write_atomic

    at_ns = time.time_ns()
    request = Request(action, by.strip(), reason.strip(), secrets.token_hex(8), now_iso())
    data = {
        "action": request.action,
        "by": request.by,
        "reason": request.reason,
        "at": request.at,
        "nonce": request.nonce,
    }
    try:
        write_atomic(folder / f"{at_ns:020d}-{request.nonce}.json", orjson.dumps(data))
    except PermissionError:
        raise GovrunError(
            f"cannot write to {folder}: only the user who started the run can steer it."
        ) from None
    except OSError as exc:
        raise GovrunError(f"cannot write the request to {folder}: {exc.strerror}") from None
    return request


def withdraw(folder: Path, request: Request) -> bool:
    """Remove a request the run has not read yet; True if it was still there."""
    for path in folder.glob(f"*-{request.nonce}.json"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            return True
    return False


class FileControl(Control):
    """Operator requests from the control folder, on top of ``inner``'s (the Control a
    Ctrl-C handler sets) and this object's own :meth:`request`.

    Never raises into the run: a folder that cannot be made or read only means nobody can
    steer the run from outside (``broken`` says why).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        inner: Control | None = None,
        registration: Registration | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.inner = inner
        self.registration = registration
        self.poll_s = poll_s
        self.paused_by: Request | None = None
        """The request that paused the run, until the operator takes it."""
        self.rejected: list[str] = []
        """Request files moved aside, with why."""
        self.stats = 0
        """How many times the folder was looked at (polling must stay cheap)."""
        self.broken: str | None = None
        self._queue: deque[Request] = deque()
        self._due = 0.0
        self._seen: int | None = None
        self._open()

    def _open(self) -> None:
        """Make the folder; requests already in it were for a run that is gone."""
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            os.chmod(self.folder, 0o700)
            for name in os.listdir(self.folder):
                with contextlib.suppress(OSError):
                    (self.folder / name).unlink()
        except OSError as exc:
            self.broken = exc.strerror or str(exc)

    # --- the loop's side ----------------------------------------------------------------

    def take(self) -> tuple[str, str] | tuple[str, str, str] | None:
        if self.requested is not None:
            return super().take()
        inner = self.inner
        if inner is not None and inner.requested is not None:
            return inner.take()
        if not self._queue:
            now = _monotonic()
            if now < self._due:
                return None
            self._due = now + self.poll_s
            self._scan()
            if self.registration is not None:
                self.registration.flush()
        while self._queue:
            request = self._queue.popleft()
            if request.action == "resume":
                self._ack(request, "ignored: the run is not paused", write=True)
                continue
            if request.action == "pause":
                self.paused_by = request
            self._ack(request, "paused" if request.action == "pause" else "stopping")
            return request.action, request.by, request.as_interrupt()
        return None

    def answer(self) -> Request | None:
        """A resume or stop for the run paused through this folder, if one came; a Ctrl-C
        meanwhile counts as a stop by whoever pressed it."""
        for control in (self, self.inner):
            if control is not None and control.requested is not None:
                taken = Control.take(control)
                assert taken is not None
                return Request("stop", taken[1], "stopped with Ctrl-C while paused", nonce="")
        self._scan()
        while self._queue:
            request = self._queue.popleft()
            if request.action == "pause":
                self._ack(request, "ignored: the run is already paused", write=True)
                continue
            self._ack(request, "resumed" if request.action == "resume" else "stopping")
            return request
        return None

    def close(self) -> None:
        """The run is over: what is still queued is acknowledged as ignored and the folder
        goes (a request written after this finds no folder)."""
        self._seen = None
        self._scan()
        while self._queue:
            self._ack(self._queue.popleft(), "ignored: the run has finished")
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- reading the folder ---------------------------------------------------------------

    def _scan(self) -> None:
        if self.broken is not None:
            return
        self.stats += 1
        try:
            mtime = os.stat(self.folder).st_mtime_ns
        except OSError:
            return
        if mtime == self._seen and time.time_ns() - mtime > RACY_NS:
            return
        self._seen = mtime
        try:
            names = sorted(n for n in os.listdir(self.folder) if not n.startswith("."))
        except OSError:
            return
        for name in names:
            path = self.folder / name
            try:
                request = read_request(path)
            except FileNotFoundError:
                continue
            except BadRequest as exc:
                self._reject(path, f"{name}: {exc}", exc.nonce)
                continue
            except OSError as exc:
                self._reject(path, f"{name}: {exc.strerror or exc}", None)
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._queue.append(request)

    def _reject(self, path: Path, why: str, nonce: str | None) -> None:
        self.rejected.append(why)
        try:
            path.replace(path.with_name(f".rejected-{path.name}"))
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()
        if nonce is not None and self.registration is not None:
            self.registration.ack(nonce, f"rejected: {why.split(': ', 1)[-1]}", write=True)

    def _ack(self, request: Request, outcome: str, *, write: bool = False) -> None:
        if self.registration is not None and request.nonce:
            self.registration.ack(request.nonce, outcome, write=write)


class ControlledOperator:
    """Answers pauses: those ``ctl`` asked for wait for ``ctl resume`` or ``ctl stop``
    (or the terminal, if ``inner`` can ask there while polling); every other pause goes to
    ``inner`` as before. ``identity`` and ``reason`` say who answered and why, for the
    ``interrupt`` the loop records."""

    def __init__(
        self,
        inner: Operator,
        control: FileControl,
        *,
        wait_s: float = WAIT_S,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.inner = inner
        self.control = control
        self.wait_s = wait_s
        self._sleep = sleep
        self.identity: str = getattr(inner, "identity", "operator")
        self.reason: str | None = None

    def on_pause(self, reason: str) -> Literal["resume", "stop"]:
        request, self.control.paused_by = self.control.paused_by, None
        self.reason = None
        if request is None:
            return self._inner(reason)
        got: list[Request] = []

        def answered() -> bool:
            found = self.control.answer()
            if found is not None:
                got.append(found)
            return found is not None

        race = getattr(self.inner, "on_pause_or", None)
        if callable(race):
            choice = race(reason, answered)  # the terminal asks, and polls ctl meanwhile
            if choice is not None:
                self.identity = getattr(self.inner, "identity", "operator")
                self.reason = getattr(self.inner, "reason", None)  # e.g. Ctrl-C at the prompt
                return choice
        else:
            while not answered():
                self._sleep(self.wait_s)
        answer = got[0]
        self.identity = answer.by
        self.reason = answer.as_answer() if answer.nonce else answer.reason
        return "resume" if answer.action == "resume" else "stop"

    def _inner(self, reason: str) -> Literal["resume", "stop"]:
        choice = self.inner.on_pause(reason)
        self.identity = getattr(self.inner, "identity", "operator")
        self.reason = getattr(self.inner, "reason", None)
        return choice


def _note(reason: str) -> str:
    return f": {reason}" if reason else ""


def _bad_text(text: str, limit: int) -> bool:
    """Too long, or holding control characters (they would reach terminals showing it)."""
    return len(text) > limit or not text.isprintable()
