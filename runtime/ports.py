"""The ports: everything non-deterministic the kernel needs crosses one of these.

Live adapters and replay adapters implement the same protocols, so replay runs the same
loop code. Nothing in the deterministic core reads a clock, a random source or the
environment directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


@runtime_checkable
class Clock(Protocol):
    """Wall time for timestamps and monotonic time for durations and budgets."""

    def now(self) -> str:
        """Current UTC time as ISO 8601 with microseconds and a trailing ``Z``."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; only differences mean anything."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait (retry backoff). Replay does not wait."""
        ...


_DIGITS = [f"{n:03d}" for n in range(1000)]
_DIGITS_Z = [f"{n:03d}Z" for n in range(1000)]


class SystemClock:
    """The live clock. Formats timestamps from a per-second cached prefix and two table
    lookups for the microseconds: every event asks for one, and ``strftime`` alone would
    cost more than the rest of a trace write."""

    def __init__(self) -> None:
        self._second_us = -(10**9)  # the current second, in µs since the epoch
        self._prefix = ""

    def now(self) -> str:
        us = time.time_ns() // 1000
        micros = us - self._second_us
        if not 0 <= micros < 1_000_000:
            second = us // 1_000_000
            self._second_us = second * 1_000_000
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            micros = us - self._second_us
        return f"{self._prefix}{_DIGITS[micros // 1000]}{_DIGITS_Z[micros % 1000]}"

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FixedClock:
    """A clock that ticks a fixed amount per reading: deterministic traces for tests and
    golden fixtures."""

    def __init__(self, start: float = 1_790_000_000.0, tick: float = 0.001) -> None:
        self._t = start
        self._tick = tick

    def now(self) -> str:
        self._t += self._tick
        return datetime.fromtimestamp(self._t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def monotonic(self) -> float:
        self._t += self._tick
        return self._t

    def sleep(self, seconds: float) -> None:
        self._t += seconds


# --- model -------------------------------------------------------------------------------


class ToolCallRequest(BaseModel):
    """One tool call as the model sent it: arguments stay the raw string, unparsed."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="The model's id for the call.")
    name: str = Field(description="Tool name as the model gave it.")
    arguments: str = Field(description="Arguments exactly as sent (JSON text, maybe malformed).")


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ModelReply(BaseModel):
    """The model's raw answer, before any post-processing."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="Model id that answered.")
    content: str | None = Field(None, description="Assistant text.")
    tool_calls: list[ToolCallRequest] = Field(default_factory=list)
    finish_reason: str | None = None
    refusal: str | None = Field(
        None, description="The model's refusal text, where the API reports one apart."
    )
    usage: Usage = Field(default_factory=Usage)
    estimated_usage: bool = Field(
        False, description="The server reported no usage: the counts are govrun's estimate."
    )


class ModelCallError(Exception):
    """One failed attempt to get a reply. ``retryable`` says whether trying again may help
    (429, 5xx, connection errors, timeouts); ``failure_class`` is ``model_error`` or
    ``timeout``."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        failure_class: str = "model_error",
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.failure_class = failure_class
        self.status = status
        self.retry_after_s = retry_after_s


@runtime_checkable
class Model(Protocol):
    """Answers a prompt. One call is one attempt: retries, backoff and recording are the
    loop's job, so every attempt lands in the trace and replay reproduces them."""

    name: str

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelReply:
        """Return the reply or raise :class:`ModelCallError`."""
        ...


@runtime_checkable
class Summarizer(Protocol):
    """Writes the summary that replaces older turns (`compaction.strategy: summarize`).
    Live: a model call; replay: the summary the trace recorded."""

    def summarize(self, model: Model, instructions: str, transcript: str) -> ModelReply:
        """Return the reply whose content is the summary, or raise ModelCallError."""
        ...


# --- tools, approvals, operator ----------------------------------------------------------


@runtime_checkable
class Tools(Protocol):
    """Executes a prepared, allowed call. Live: the tool itself; replay: the record."""

    def execute(self, call: Any) -> Any:
        """Run ``call`` (a :class:`govrun.runtime.govern.toolbox.PreparedCall`) and return its
        :class:`govrun.runtime.tools.base.ToolResult`. Never raises for a tool's own failure."""
        ...


class ApprovalRequest(BaseModel):
    """What an approver is asked to decide: the exact call, its risk and context."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    step: int
    call_id: str
    tool: str
    arguments: dict[str, Any]
    """The canonical call: exactly what would run (paths resolved, the argv, typed values)."""
    call_hash: str
    risk: str
    rule: str | None
    reason: str
    rationale: str | None = Field(None, description="The model's last message: why it asks.")
    timeout_s: float | None = None
    preview: str | None = Field(
        None, description="What the call would change, e.g. a unified diff for a file write."
    )
    raw_arguments: dict[str, Any] | None = Field(
        None, description="The arguments as the model sent them, when they differ."
    )
    recordable: Callable[[str], bool] | None = Field(None, exclude=True, repr=False)
    """Whether the trace keeps a text exactly as given (it quotes no secret value of the
    run). A decision signed elsewhere must be kept as signed: one whose reason the trace
    would have to redact is refused, not recorded with a signature that no longer holds."""


class ApprovalDecision(BaseModel):
    """An approver's answer."""

    model_config = ConfigDict(frozen=True)

    decision: Literal["approve", "reject", "stop"]
    approver: str
    via: Literal["prompt", "auto", "deny", "rule", "timeout", "replay", "remote"]
    reason: str = ""
    signed: dict[str, str] | None = Field(
        None,
        description="A decision signed elsewhere (`govrun approve`): decided_at, "
        "key_fingerprint, public_key, key_source and signature over exactly the recorded "
        "fields; the run records them instead of signing with its own key.",
    )
    notes: tuple[dict[str, Any], ...] = Field(
        (),
        description="`approval_note` payloads (refused decisions, notifier outcomes) to record "
        "before the decision.",
    )


@runtime_checkable
class Approver(Protocol):
    """Decides calls that policy sent to the approval gate."""

    def decide(self, request: ApprovalRequest) -> ApprovalDecision: ...


@runtime_checkable
class Verifier(Protocol):
    """Checks outcomes against the world (files, hashes, predicates). Live: the checks run;
    replay: the recorded observations answer, since the world the run saw is gone."""

    def check_call(self, call: Any, result: Any) -> list[Any]:
        """Outcomes (:class:`govrun.runtime.govern.verification.CheckOutcome`) of a call's checks,
        default evidence first; ``call`` is a :class:`govrun.runtime.govern.toolbox.PreparedCall`
        that ran."""
        ...

    def check_success(self, final_answer: str | None) -> list[Any]:
        """Outcomes of the manifest's ``success:`` checks."""
        ...


@runtime_checkable
class Rollbacker(Protocol):
    """Undoes one recorded effect (``on_failure: rollback``). Live: files are restored and
    undo commands run; replay: the recorded outcome answers, since undoing touches the
    world."""

    def undo(self, effect: Any) -> Any:
        """The :class:`govrun.runtime.ops.undo.UndoOutcome` of undoing ``effect`` (a
        :class:`govrun.runtime.ops.undo.Effect`). Never raises for a refused or failed undo."""
        ...


@runtime_checkable
class Operator(Protocol):
    """The person (or policy) asked when a run pauses: resume or stop.

    The loop records the answer with ``by`` = the operator's ``identity`` attribute and, if
    the operator sets a ``reason`` attribute (who answered from where, and why), that as
    the reason: an operator relaying someone else's answer (`govrun ctl`) sets both before
    returning."""

    def on_pause(self, reason: str) -> Literal["resume", "stop"]: ...


class Control:
    """Requests from outside the loop (Ctrl-C; `govrun ctl` through
    :class:`govrun.runtime.ops.control.FileControl`), polled between stages.

    Setting a flag is all a signal handler may do safely; the loop acts on it at the next
    stage boundary, records it, and asks the operator. :meth:`take` returns ``(what, by)``
    or ``(what, by, reason)`` when the request carries its own recorded reason.
    """

    def __init__(self) -> None:
        self.requested: Literal["pause", "stop"] | None = None
        self.by: str | None = None

    def request(self, what: Literal["pause", "stop"], *, by: str) -> None:
        if self.requested != "stop":
            self.requested, self.by = what, by

    def take(self) -> tuple[str, str] | tuple[str, str, str] | None:
        if self.requested is None:
            return None
        taken = (self.requested, self.by or "operator")
        self.requested = self.by = None
        return taken
