"""The governed loop. Read ``_step`` top to bottom: it is the product (DESIGN section 2).

The loop talks to the world only through ports (model, tools, approver, operator, clock)
and records every stage as a typed event before acting on it. It prints nothing: the CLI
observes events. Runs end by raising :class:`RunEnded`, caught in one place; the trace is
finished in ``finally`` so even a crash leaves a verifiable record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from govrun.runtime.errors import TraceWriteError
from govrun.runtime.govern import compaction
from govrun.runtime.govern.compaction import LiveSummarizer
from govrun.runtime.govern.decide import Preparer, decide_call
from govrun.runtime.govern.guards import Counters, Guards, ModelUsage, Trip
from govrun.runtime.govern.policy import PolicyEngine
from govrun.runtime.govern.preview import preview_call
from govrun.runtime.govern.replies import Parsed, Refused, judge_reply
from govrun.runtime.govern.routing import Router, StepOutcome
from govrun.runtime.govern.toolbox import PreparedCall, Toolbox
from govrun.runtime.govern.verification import CheckOutcome, LiveVerifier
from govrun.runtime.manifest.schema import Manifest
from govrun.runtime.models.pricing import cost_usd
from govrun.runtime.models.prompt_size import PromptSizer
from govrun.runtime.ops.undo import Effect, LiveRollbacker, undo_all, undo_record
from govrun.runtime.ops.undo import describe as describe_undos
from govrun.runtime.ports import (
    ApprovalDecision,
    ApprovalRequest,
    Approver,
    Clock,
    Control,
    Model,
    ModelCallError,
    ModelReply,
    Operator,
    Rollbacker,
    Summarizer,
    ToolCallRequest,
    Tools,
    Verifier,
)
from govrun.runtime.tools import ToolResult
from govrun.runtime.tools.definitions import signatures
from govrun.runtime.trace import events as ev
from govrun.runtime.trace.canonical import blob_dir, canonical
from govrun.runtime.trace.signing import Signer, approval_message, seal_message
from govrun.runtime.trace.writer import TraceWriter

MAX_BACKOFF_S = 8.0

CUT_OFF_CALLS = (
    "Your last reply was cut off by the token limit (finish_reason length), so its tool "
    "calls may be incomplete. Keep each call short: write a long file in parts, or shorten it."
)
"""Told after the calls of a reply cut off by the token limit were decided (schema 2.1):
a call whose arguments were cut mid-JSON is denied, and this says why it broke."""

HELD = frozenset(
    {
        ev.Route,
        ev.Compaction,
        ev.ModelRequest,
        ev.ModelResponse,
        ev.ReplyRefused,
        ev.TextToolCalls,
        ev.ToolCall,
        ev.ApprovalRequested,
        ev.ToolStarted,
        ev.ToolFinished,
        ev.Verification,
        ev.StepFinished,
    }
)
"""Events whose lines may wait in memory (``TraceWriter.hold``): the loop flushes the
trace before every port call that reaches outside the process (model, tools, approver,
operator, verifier, summarizer, rollback, backoff sleep), so each is on disk before the
next side effect (DESIGN section 4) and a step takes two writes instead of eight. A crash
between a tool's return and the next flush (pure computation, microseconds) leaves the
call in flight, as a crash during the call does: `govrun resume` asks whether to re-run
it. A result that records how to undo its change, human and operator decisions,
rollbacks, and the run's start and end are written at once."""


class RunEnded(Exception):
    """Ends the run with a status and, unless completed, a failure class."""

    def __init__(
        self, status: str, failure_class: str | None, reason: str, answer: str | None = None
    ) -> None:
        super().__init__(reason)
        self.status, self.failure_class, self.reason, self.answer = (
            status,
            failure_class,
            reason,
            answer,
        )


@dataclass(frozen=True)
class RunResult:
    """How a run ended, and where its record is."""

    run_id: str
    status: str
    failure_class: str | None
    reason: str
    steps: int
    final_answer: str | None
    head: str
    trace_path: str
    events: int
    counters: Counters
    workspace: str | None = None
    """The folder holding the run's copy of its workspace template, if it has one."""


class RunSuspended(BaseException):
    """Raised by a port (an approver, an operator) that cannot answer in this process: the
    run waits for something outside — a person deciding on another machine. The loop stops
    where it is without ending the run: the trace ends at the question (``approval_requested``,
    a pause's ``interrupt``), flushed and unsealed, and the run resumes from it later (the
    resume machinery: replay to the end of the record, then live). ``waiting`` says what
    for, for whoever scheduled the run."""

    def __init__(self, waiting: dict[str, Any]) -> None:
        super().__init__(waiting.get("kind", "waiting"))
        self.waiting = waiting


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C ended the run at once (in the CLI: a second one before the loop could pause).
    The loop recorded the operator's stop and sealed the trace first; this is still a
    ``KeyboardInterrupt``, so Ctrl-C goes on up through an embedder's code, and it carries
    how the run ended for whoever tells the person."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result.reason)
        self.result = result


class RunCrashed(Exception):
    """Something failed that govrun did not foresee — a bug here, or in a port an embedder
    supplied. The loop recorded it as the run's end (failed, ``internal_error``, the
    exception named in the reason) and sealed the trace; this carries that result, with the
    exception itself as ``__cause__`` for whoever reports it."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result.reason)
        self.result = result


class RunHalted(TraceWriteError):
    """The trace could not be written, so the run halted before its next side effect. It
    carries how far the record got: ``result.head`` and ``result.events`` are those of the
    last whole line on disk, which ``govrun verify --head`` checks."""

    def __init__(self, failure: TraceWriteError, result: RunResult) -> None:
        super().__init__(failure.message, hint=failure.hint)
        self.result = result


class GovernedLoop:
    """One run of one agent under its manifest."""

    def __init__(
        self,
        *,
        manifest: Manifest,
        task: str,
        trace: TraceWriter,
        model: Model,
        toolbox: Toolbox,
        tools: Tools,
        preparer: Preparer | None = None,
        approver: Approver,
        operator: Operator,
        clock: Clock,
        control: Control | None = None,
        run_started: dict[str, Any] | None = None,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
        models: Mapping[str, Model] | None = None,
        summarizer: Summarizer | None = None,
        rollbacker: Rollbacker | None = None,
        policy: PolicyEngine | None = None,
        mcp_servers: Sequence[Mapping[str, Any]] = (),
        revision: ev.Revision = ev.CURRENT_REVISION,
    ) -> None:
        """``revision``: the schema revision the run is written in; a replay passes its
        record's, so a run from before :data:`~govrun.runtime.trace.events.REPLIES_JUDGED`
        takes every reply without tool calls as its answer, as it did then."""
        self.m = manifest
        self.task = task
        self.trace = trace
        trace.hold = HELD
        self.model = model
        self.toolbox = toolbox
        self.tools = tools
        self.preparer: Preparer = preparer or toolbox
        self.approver = approver
        self.operator = operator
        self.clock = clock
        self.verifier = verifier or LiveVerifier(manifest)
        self.control = control or Control()
        # Every approval and the seal are signed; without a key, by one made for this run.
        self.signer = signer or Signer.ephemeral()
        self.policy = policy or PolicyEngine(manifest)
        self.guards = Guards(manifest)
        self.c = Counters()
        self.step = 0
        self.messages: list[dict[str, Any]] = []
        self._sent = 0  # messages already recorded in a model_request
        self._open: tuple[float, int, float] | None = None  # the step in progress
        # Several models (`routing:`): one adapter per name, chosen per step.
        self.models = dict(models or {})
        self.router = Router(manifest.routing) if manifest.routing else None
        self.model_name: str | None = None  # the name under `models:` in use
        self.model_cfg = manifest.model
        self._outcome: StepOutcome | None = None  # what the step in progress did
        self._previous: StepOutcome | None = None
        self.summarizer = summarizer or LiveSummarizer()
        self._sizer = PromptSizer()
        # The prompt hash is kept incrementally; with routing, the model and its params are
        # added per request, since the same history may go to either model.
        basis: dict[str, Any] = {"tools": toolbox.definitions}
        if self.router is None:
            basis["model"] = model.name
            basis["params"] = manifest.model.params.model_dump(mode="json", exclude_none=True)
            if manifest.model.tool_schema != "full":  # absent before it existed
                basis["tool_schema"] = manifest.model.tool_schema
        self._prompt_basis = hashlib.sha256(canonical(basis))
        self._prompt = self._prompt_basis.copy()
        self._run_started = run_started or {}
        self._mcp_servers = mcp_servers
        self._t0 = clock.monotonic()
        # Rollback (`on_failure: rollback`): the effects the run recorded, in order, and the
        # first failed check's class (a run that completes after one still rolls back).
        self.rollbacker = rollbacker or LiveRollbacker(
            blob_dirs=[blob_dir(trace.path)], tools=toolbox.tool
        )
        self._effects: list[Effect] = []
        self._check_failed: str | None = None
        self._judges = revision >= ev.REPLIES_JUDGED
        self._refused = 0  # replies in a row that were no answer

    # --- the run ------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run to the end and say how it went. A Ctrl-C that interrupts at once ends it as
        the operator's stop and raises :class:`RunInterrupted`; a failed trace write halts
        it and raises :class:`RunHalted`; anything unforeseen is recorded as an internal
        error and raises :class:`RunCrashed`. All three carry the result, the trace as it
        stands."""
        end = RunEnded("failed", "internal_error", "the run ended unexpectedly")
        interrupted = suspended = False
        crashed: Exception | None = None
        try:
            try:
                self._start()
                while True:
                    self._step()
            except RunEnded as ended:
                # Kept without its traceback: frames of this run holding the exception
                # that holds them would leave the whole run (and a replay's record) to the
                # cycle collector instead of freeing it when the run is done.
                end = ended.with_traceback(None)
            except RunSuspended:
                suspended = True  # the run is not over: nothing ends it here
                raise
            except TraceWriteError:
                raise  # the record cannot be written: nothing more may happen, not even this
            except KeyboardInterrupt:
                end = RunEnded("stopped", "operator_stop", "interrupted (Ctrl-C twice)")
                interrupted = True
            except Exception as exc:
                end = RunEnded(
                    "failed", "internal_error", f"internal error: {type(exc).__name__}: {exc}"
                )
                crashed = exc
            finally:
                if not (suspended or self.trace.closed or self.trace.broken) and self.trace.seq:
                    end = self._finish(end)
        except TraceWriteError as exc:
            halted = RunEnded("failed", "trace_error", exc.message)
            raise RunHalted(exc, self._result(halted)) from exc
        result = self._result(end)
        if interrupted:
            raise RunInterrupted(result)
        if crashed is not None:
            raise RunCrashed(result) from crashed
        return result

    def _start(self) -> None:
        self._emit(ev.RunStarted, **self._run_started)
        for server in self._mcp_servers:  # as the run found its MCP servers
            self._emit(ev.McpServer, **server)
            if server.get("error"):
                raise RunEnded("failed", "tool_error", str(server["error"]))
        if self.m.system:
            self.messages.append({"role": "system", "content": self.m.system})
        self.messages.append({"role": "user", "content": self.task})

    def _step(self) -> None:
        # Checked between steps, so an interrupt here belongs to the step that just ended.
        self._checkpoint(self.guards.before_step(self._counters()))
        self.step += 1
        self._open = (self.clock.monotonic(), self.c.tokens, self.c.cost_usd)
        if self.router is not None:  # what a step did matters only to routing
            self._previous, self._outcome = self._outcome, StepOutcome()
            self._route()
        reply = self._propose()  # 1-3: context, interrupts, model
        if self._judges and not reply.tool_calls:
            judged = judge_reply(
                reply,
                self.step,
                tool_call_format=self.model_cfg.tool_call_format,
                shapes=signatures(self.toolbox.definitions),
            )
            if isinstance(judged, Refused):
                self._refuse(reply, judged)  # no answer: the model is told, and asked again
                return
            if judged is not None:
                reply = self._parsed(reply, judged)
        self._refused = 0
        self.messages.append(_assistant_message(reply))
        if not reply.tool_calls:
            self._complete(reply.content)  # 7: success checks end the run
        for call in reply.tool_calls:
            self._govern(call, reply.content)  # 4-7 for each proposed call
        if self._judges and reply.finish_reason == "length":
            self.messages.append({"role": "user", "content": CUT_OFF_CALLS})
        self.c.steps += 1
        self._close_step("continue")

    def _close_step(self, outcome: str) -> None:
        """Every step that began gets its step_finished, whatever ended the step."""
        if self._open is None:
            return
        started, tokens, cost = self._open
        self._open = None
        self._emit(
            ev.StepFinished,
            outcome=outcome,
            tokens=self.c.tokens - tokens,
            cost_usd=round(self.c.cost_usd - cost, 8),
            duration_ms=_ms(self.clock.monotonic() - started),
        )

    # --- propose ------------------------------------------------------------------------

    def _propose(self) -> ModelReply:
        """Ask the model, retrying transient failures with backoff; every attempt is
        recorded, the request before it is sent and the response before it is used."""
        if self.m.compaction is not None:
            self._compact_if_needed()
        added = self.messages[self._sent :]
        for message in added:  # hashed as recorded (secrets redacted), so replay can match
            self._prompt.update(canonical(self.trace.redact(message)))
        self._sent = len(self.messages)
        prompt_hash = self._prompt_hash()
        cfg = self.model_cfg
        attempts = cfg.max_retries + 1
        for attempt in range(1, attempts + 1):
            self._checkpoint(self.guards.before_model_call(self._counters(), self.model_name))
            self._emit(
                ev.ModelRequest,
                model=self.model.name,
                attempt=attempt,
                messages_added=added if attempt == 1 else [],
                message_count=len(self.messages),
                prompt_hash=prompt_hash,
            )
            started = self.clock.monotonic()
            self.c.model_calls += 1
            usage = self._model_usage()
            if usage is not None:
                usage.model_calls += 1
            try:
                self.trace.flush()
                reply = self.model.complete(self.messages, self.toolbox.definitions)
            except ModelCallError as exc:
                self._emit(
                    ev.ModelResponse,
                    model=self.model.name,
                    attempt=attempt,
                    error=exc.message,
                    failure_class=exc.failure_class,
                    retryable=exc.retryable,
                    duration_ms=_ms(self.clock.monotonic() - started),
                )
                if not exc.retryable or attempt == attempts:
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise RunEnded(
                        "failed", exc.failure_class, f"model call failed{tries}: {exc.message}"
                    ) from None
                self.trace.flush()
                self.clock.sleep(_backoff(attempt, exc.retry_after_s))
                continue
            spent = reply.usage
            cost = cost_usd(spent, cfg.pricing)
            self.c.prompt_tokens += spent.prompt_tokens
            self.c.completion_tokens += spent.completion_tokens
            self.c.cost_usd += cost
            if usage is not None:
                usage.tokens += spent.prompt_tokens + spent.completion_tokens
                usage.cost_usd += cost
            response: dict[str, Any] = {
                "model": reply.model,
                "attempt": attempt,
                "tool_calls": [
                    {"id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls
                ],
                "usage": {
                    "prompt_tokens": spent.prompt_tokens,
                    "completion_tokens": spent.completion_tokens,
                    "total_tokens": spent.total_tokens,
                },
                "cost_usd": round(cost, 8),
                "duration_ms": _ms(self.clock.monotonic() - started),
            }
            if reply.content is not None:  # absent is null: a reply of calls has no text
                response["content"] = reply.content
            if reply.finish_reason is not None:
                response["finish_reason"] = reply.finish_reason
            if reply.refusal is not None:
                response["refusal"] = reply.refusal
            if reply.estimated_usage:
                response["estimated_usage"] = True
            self.trace.write(ev.ModelResponse, self.step, response)
            return reply
        raise AssertionError("unreachable")

    def _refuse(self, reply: ModelReply, refused: Refused) -> None:
        """Record why the reply is no answer and tell the model; the limit in a row ends
        the run (``model_error``)."""
        self._refused += 1
        limit = self.model_cfg.max_refused_replies
        self._emit(
            ev.ReplyRefused,
            kind=refused.kind,
            reason=refused.told,
            **({"finish_reason": reply.finish_reason} if reply.finish_reason else {}),
            in_a_row=self._refused,
            limit=limit,
            **({"detected": refused.detected} if refused.detected is not None else {}),
        )
        if self._outcome is not None:
            self._outcome.failures.add("model_error")
        self.messages.append({"role": "assistant", "content": reply.content or ""})
        if self._refused >= limit:
            raise RunEnded(
                "failed",
                "model_error",
                f"the model sent {self._refused} replies in a row that were no final answer "
                f"(model.max_refused_replies {limit}); the last was {refused.what}",
            )
        self.messages.append({"role": "user", "content": refused.told})
        self.c.steps += 1
        self._close_step("continue")

    def _parsed(self, reply: ModelReply, parsed: Parsed) -> ModelReply:
        """Calls written as text in ``model.tool_call_format``, recorded as parsed and then
        decided like native ones."""
        self._emit(
            ev.TextToolCalls,
            format=parsed.format,
            calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in parsed.calls],
        )
        return reply.model_copy(update={"tool_calls": parsed.calls})

    def _prompt_hash(self) -> str:
        if self.router is None:
            return self._prompt.hexdigest()
        params = self.model_cfg.params.model_dump(mode="json", exclude_none=True)
        sent: dict[str, Any] = {"model": self.model.name, "params": params}
        if self.model_cfg.tool_schema != "full":  # absent before it existed
            sent["tool_schema"] = self.model_cfg.tool_schema
        tail = canonical(sent)
        return hashlib.sha256(self._prompt.hexdigest().encode() + tail).hexdigest()

    def _model_usage(self) -> ModelUsage | None:
        if self.model_name is None:
            return None
        return self.c.per_model.setdefault(self.model_name, ModelUsage())

    # --- routing and compaction -----------------------------------------------------------

    def _route(self) -> None:
        """Pick this step's model; a change (and the first choice) is a `route` event."""
        assert self.router is not None
        name, reason = self.router.choose(self.step, self._previous, self._prompt_tokens)
        if name == self.model_name:
            return
        self._emit(ev.Route, model=name, previous=self.model_name, reason=reason)
        self.model_name = name
        self.model_cfg = self.m.models[name]
        self.model = self.models[name]

    def _prompt_tokens(self) -> int:
        bytes_per_token = self.m.compaction.bytes_per_token if self.m.compaction else 4.0
        return self._sizer.tokens(self.messages, self.toolbox.definitions, bytes_per_token)

    def _compact_if_needed(self) -> None:
        """Replace older turns when the prompt would exceed the limit; the next request
        then records the whole new prompt (it no longer extends the previous one)."""
        cfg = self.m.compaction
        assert cfg is not None
        before = self._prompt_tokens()
        if before <= cfg.max_context_tokens:
            return
        split = compaction.plan(self.messages, cfg.keep_last_turns)
        if split is None:
            return  # nothing older than the turns to keep
        extra: dict[str, Any] = {}
        if cfg.strategy == "summarize":
            text, extra = self._summarize(split.old)
        else:
            text = compaction.truncation_summary(split.old)
        message = compaction.compaction_message(text, split.turns_replaced, cfg.strategy)
        self.messages = [*split.head, message, *split.kept]
        self._sent = 0
        self._prompt = self._prompt_basis.copy()
        self._emit(
            ev.Compaction,
            strategy=cfg.strategy,
            tokens_before=before,
            tokens_after=self._prompt_tokens(),
            messages_removed=len(split.old),
            turns_replaced=split.turns_replaced,
            summary=text,
            **extra,
        )

    def _summarize(self, old: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        """A model-written summary of ``old`` (through the summarizer port, so replay reuses
        the recorded one); accounted like any model call."""
        cfg = self.m.compaction
        assert cfg is not None
        name = cfg.summary_model or self.model_name
        model = self.models[name] if name is not None else self.model
        pricing = self.m.model_config_for(name).pricing
        self.trace.flush()
        try:
            reply = self.summarizer.summarize(
                model, cfg.summary_instructions, compaction.transcript(old)
            )
        except ModelCallError as exc:  # fall back to truncation, and say so
            return compaction.truncation_summary(old), {
                "error": f"summary failed, truncated instead: {exc.message}"
            }
        cost = cost_usd(reply.usage, pricing)
        self.c.model_calls += 1
        self.c.prompt_tokens += reply.usage.prompt_tokens
        self.c.completion_tokens += reply.usage.completion_tokens
        self.c.cost_usd += cost
        if name is not None:
            usage = self.c.per_model.setdefault(name, ModelUsage())
            usage.model_calls += 1
            usage.tokens += reply.usage.prompt_tokens + reply.usage.completion_tokens
            usage.cost_usd += cost
        return reply.content or "", {
            "model": reply.model,
            "usage": {
                "prompt_tokens": reply.usage.prompt_tokens,
                "completion_tokens": reply.usage.completion_tokens,
                "total_tokens": reply.usage.total_tokens,
            },
            "cost_usd": round(cost, 8),
        }

    # --- one proposed call: policy, approval, execute, verify -----------------------------

    def _govern(self, call: ToolCallRequest, rationale: str | None) -> None:
        v = decide_call(self.preparer, self.policy, self.step, call)
        prepared = v.call if isinstance(v.call, PreparedCall) else None
        sent = prepared.raw if prepared is not None else v.call.arguments
        decided = prepared.canonical.arguments if prepared and prepared.canonical else None
        decision: dict[str, Any] = {"effect": v.effect, "reason": v.reason}
        if v.rule is not None:  # absent is null (the default rule, a rejection)
            decision["rule"] = v.rule
        if v.risk is not None:
            decision["risk"] = v.risk
        if v.failure_class is not None:
            decision["failure_class"] = v.failure_class
        payload: dict[str, Any] = {
            "call_id": call.id,
            "tool": call.name,
            "arguments": sent,
            "call_hash": v.call.call_hash,
            "decision": decision,
        }
        raw = getattr(v.call, "raw_arguments", None)
        if raw is not None:
            payload["raw_arguments"] = raw
        if decided is not None and _differ(decided, sent):
            payload["canonical"] = decided
        self.trace.write(ev.ToolCall, self.step, payload)
        outcome = self._outcome
        if outcome is not None:
            outcome.tools.append(call.name)
        if v.effect == "deny":
            self.c.denials += 1
            if outcome is not None:
                outcome.failures.add("policy_denied")
            self._tell(call.id, f"[{v.failure_class}] call not executed: {v.reason}")
        size = len(call.arguments.encode("utf-8", "surrogatepass"))  # bytes, not characters
        self._checkpoint(self.guards.on_proposed(call.name, v.call.arguments, size))
        if v.effect == "deny" or prepared is None:
            return
        if v.effect == "ask" and not self._approved(prepared, v.rule, v.reason, rationale):
            if outcome is not None:
                outcome.failures.add("approval_rejected")
            return
        self._checkpoint(self.guards.before_tool_call(self._counters(), call.name))
        result = self._execute(prepared)
        if outcome is not None and not result.ok:
            outcome.failures.add("tool_error")
        self._verify(prepared, result)

    def _approved(
        self, call: PreparedCall, rule: str | None, reason: str, rationale: str | None
    ) -> bool:
        self._emit(
            ev.ApprovalRequested,
            call_id=call.call_id,
            tool=call.name,
            call_hash=call.call_hash,
            risk=call.risk,
            rule=rule,
            timeout_s=self.m.approvals.timeout_s,
        )
        self.trace.flush()
        request = ApprovalRequest(
            run_id=self.trace.run_id,
            step=self.step,
            call_id=call.call_id,
            tool=call.name,
            arguments=call.arguments,
            raw_arguments=call.raw if _differ(call.raw, call.arguments) else None,
            call_hash=call.call_hash,
            risk=call.risk,
            rule=rule,
            reason=reason,
            rationale=rationale,
            timeout_s=self.m.approvals.timeout_s,
            preview=preview_call(call),
            recordable=self._kept_as_is,
        )
        try:
            d = self.approver.decide(request)
        except RunSuspended as suspended:  # what was refused meanwhile is on record first
            for note in suspended.waiting.get("notes") or ():
                self._emit(ev.ApprovalNote, call_id=call.call_id, **note)
            self.trace.flush()
            raise
        for note in d.notes:
            self._emit(ev.ApprovalNote, call_id=call.call_id, **note)
        self._record_decision(call, d)
        if d.decision == "stop":
            raise RunEnded(
                "stopped",
                "approval_rejected",
                f"{d.approver} stopped the run at {call.name}: {d.reason or 'no reason'}",
            )
        if d.decision == "reject":
            self._tell(
                call.call_id,
                f"[approval_rejected] {d.approver} rejected this call"
                + (f": {d.reason}" if d.reason else "."),
            )
            return False
        self.c.approvals += 1
        return True

    def _kept_as_is(self, text: str) -> bool:
        return self.trace.redact({"text": text})["text"] == text

    def _record_decision(self, call: PreparedCall, d: ApprovalDecision) -> None:
        """``approval_decided``, signed: the signature covers exactly the values recorded
        (``run_id`` and ``step`` are the envelope values the writer stamps)."""
        fields: dict[str, Any] = {
            "run_id": self.trace.run_id,
            "step": self.step,
            "call_id": call.call_id,
            "tool": call.name,
            "call_hash": call.call_hash,
            "policy_hash": self.policy.policy_hash,
            "decision": d.decision,
            "via": d.via,
            "approver": d.approver,
            "reason": d.reason,
            "decided_at": self.clock.now(),
        }
        if d.signed is not None:  # signed by the decider, over these very values
            fields["decided_at"] = d.signed["decided_at"]
            signature = {k: v for k, v in d.signed.items() if k != "decided_at"}
            self._emit(ev.ApprovalDecided, **fields, **signature)
            return
        fields = self.trace.redact(fields)  # sign the values the trace will store
        self._emit(ev.ApprovalDecided, **fields, **self._signed(approval_message(fields)))

    def _execute(self, call: PreparedCall) -> ToolResult:
        """Write-ahead: ``tool_started`` is on disk before the side effect begins."""
        self._emit(
            ev.ToolStarted,
            call_id=call.call_id,
            call_hash=call.call_hash,
        )
        started = self.clock.monotonic()
        self.c.tool_calls += 1
        self.c.per_tool[call.name] += 1
        self.trace.flush()
        result = self.tools.execute(call)
        self.guards.on_executed(call.name)
        evidence = result.evidence
        if result.undo is not None:  # pre-image bytes reach the sidecar before the record
            evidence = {**evidence, "undo": undo_record(result.undo, self.trace.store_blob)}
        finished: dict[str, Any] = {
            "call_id": call.call_id,
            "tool": call.name,
            "ok": result.ok,
            "output": result.output,
            "data": result.data,
            "evidence": evidence,
            "duration_ms": _ms(self.clock.monotonic() - started),
        }
        if not result.ok:  # absent is null: a call that succeeded has neither
            finished["error"] = result.error
            finished["failure_class"] = result.failure_class
        self.trace.write(ev.ToolFinished, self.step, finished)
        if isinstance(evidence.get("undo"), dict):  # replayed results carry the recorded one
            self.trace.flush()  # how to undo a change is on disk as soon as it is made
            self._effects.append(Effect(self.step, call.call_id, call.name, evidence["undo"]))
        return result

    def _verify(self, call: PreparedCall, result: ToolResult) -> None:
        """Each call's declared checks, plus the builtin's default evidence. A call that
        already failed is not verified: its failure is classified on ``tool_finished``."""
        if not result.ok or (not call.spec.verify and call.spec.uses is None):
            self._tell(call.call_id, result.output)  # nothing to verify
            return
        self.trace.flush()
        outcomes = self.verifier.check_call(call, result)
        for o in outcomes:
            self._record_check(o, call.call_id)
        failed = [o for o in outcomes if o.failure_class]
        if failed and self._outcome is not None:
            self._outcome.failures.add("verification_failed")
        text = result.output
        if failed:
            text += "\n" + "\n".join(f"[{o.failure_class}] {o.check}: {o.detail}" for o in failed)
        self._tell(call.call_id, text)

    def _record_check(self, o: CheckOutcome, call_id: str | None) -> None:
        self._check_failed = self._check_failed or o.failure_class
        self._emit(
            ev.Verification,
            call_id=call_id,
            check=o.check,
            check_id=o.check_id,
            passed=o.passed,
            evidence=o.evidence,
            detail=o.detail,
            failure_class=o.failure_class,
        )

    # --- completion and interrupts ------------------------------------------------------

    def _complete(self, answer: str | None) -> None:
        """The model answered without tool calls: the run ends, completed only if every
        required success check holds."""
        self.c.steps += 1
        self.trace.flush()
        outcomes = self.verifier.check_success(answer)
        for o in outcomes:
            self._record_check(o, None)
        failed = [o for o in outcomes if o.failure_class]
        self._close_step("failed" if failed else "final")
        if failed:
            first = failed[0]
            raise RunEnded(
                "failed",
                first.failure_class,
                f"success check {first.check_id or first.check} failed: {first.detail}",
                answer,
            )
        raise RunEnded("completed", None, "the agent finished and every success check held", answer)

    def _checkpoint(self, trip: Trip | None) -> None:
        """Act on a tripped guard or an operator request: record it, then pause or stop."""
        request = self.control.take()
        if request is not None:
            what, by, *why = request  # a request may bring its own reason (govrun ctl)
            reason = why[0] if why else f"{what} requested by {by}"
            self._interrupt("operator", "operator_request", what, reason, by=by)
        if trip is not None:
            self._interrupt(
                trip.kind,
                trip.rule,
                trip.action,
                trip.reason,
                detail=trip.detail,
                failure_class=trip.failure_class,
            )

    def _interrupt(
        self,
        kind: str,
        rule: str,
        action: str,
        reason: str,
        *,
        by: str | None = None,
        detail: dict[str, Any] | None = None,
        failure_class: str | None = None,
    ) -> None:
        """Record the interrupt; a stop ends the run, a pause asks the operator, whose
        answer is recorded as an operator interrupt of its own."""
        stop_class = failure_class or "operator_stop"
        stopping = action == "stop"
        self._emit(
            ev.Interrupt,
            kind=kind,
            rule=rule,
            action=action,
            reason=reason,
            by=by,
            detail=detail or {},
            failure_class=stop_class if stopping else None,
        )
        if stopping:
            raise RunEnded("stopped", stop_class, reason)
        self.trace.flush()
        choice = self.operator.on_pause(reason)
        resumed = choice == "resume"
        self._emit(
            ev.Interrupt,
            kind="operator",
            rule=rule,
            action=choice,
            reason=getattr(self.operator, "reason", None)
            or f"operator {'resumed' if resumed else 'stopped'} the run",
            by=getattr(self.operator, "identity", "operator"),
            failure_class=None if resumed else stop_class,
        )
        if not resumed:
            raise RunEnded("stopped", stop_class, f"stopped after pause: {reason}")

    # --- recording ------------------------------------------------------------------------

    def _emit(self, cls: type[ev.Event], **payload: Any) -> None:
        self.trace.write(cls, self.step, payload)

    def _tell(self, call_id: str, content: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})

    def _counters(self) -> Counters:
        self.c.elapsed_s = self.clock.monotonic() - self._t0
        return self.c

    def _finish(self, end: RunEnded) -> RunEnded:
        if self._open is not None:  # the run ended inside a step
            self.c.steps += 1
            self._close_step("stop" if end.status == "stopped" else "failed")
        if self.m.on_failure == "rollback":
            end = self._roll_back(end)
        c = self._counters()
        outcome = self.trace.redact(
            {  # sign exactly the values the trace will store
                "status": end.status,
                "failure_class": end.failure_class,
                "reason": end.reason,
                "steps": c.steps,
                "event_count": self.trace.seq + 1,  # this event included
                "head": self.trace.head,
                "final_answer": end.answer,
                "totals": {
                    "model_calls": c.model_calls,
                    "tool_calls": c.tool_calls,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "tokens": c.tokens,
                    "cost_usd": round(c.cost_usd, 8),
                    "denials": c.denials,
                    "approvals": c.approvals,
                    "duration_ms": _ms(c.elapsed_s),
                    **_per_model(c),
                },
            }
        )
        seal = self._signed(seal_message({**outcome, "run_id": self.trace.run_id}))
        self._emit(ev.RunFinished, **outcome, seal=seal)
        return end

    def _roll_back(self, end: RunEnded) -> RunEnded:
        """`on_failure: rollback`: a run that failed, stopped or saw a check fail undoes its
        recorded effects newest first (through the rollbacker port, so replay answers from
        the record), each recorded before `run_finished`. It still ends failed."""
        if not self._effects or (end.status == "completed" and self._check_failed is None):
            return end
        self.trace.flush()
        outcomes = undo_all(
            self._effects, self.rollbacker, lambda o: self._emit(ev.Rollback, **o.payload())
        )
        done = f"rolled back (on_failure): {describe_undos(outcomes)}"
        if end.status == "completed":
            why = f"a verification failed during the run; {done}"
            return RunEnded("failed", self._check_failed, why, end.answer)
        return RunEnded(end.status, end.failure_class, f"{end.reason}; {done}", end.answer)

    def _signed(self, message: bytes) -> dict[str, str]:
        """The signature over ``message`` and the key that made it, as recorded."""
        return {
            "key_fingerprint": self.signer.fingerprint,
            "public_key": self.signer.public_key,
            "key_source": self.signer.source,
            "signature": self.signer.sign(message),
        }

    def _result(self, end: RunEnded) -> RunResult:
        return RunResult(
            run_id=self.trace.run_id,
            status=end.status,
            failure_class=end.failure_class,
            reason=end.reason,
            steps=self.c.steps,
            final_answer=end.answer,
            head=self.trace.head,
            trace_path=str(self.trace.path),
            events=self.trace.seq,
            counters=self.c,
        )


def _per_model(c: Counters) -> dict[str, Any]:
    """Usage per named model, for runs that route between several."""
    if not c.per_model:
        return {}
    return {
        "models": {
            name: {
                "model_calls": u.model_calls,
                "tokens": u.tokens,
                "cost_usd": round(u.cost_usd, 8),
            }
            for name, u in sorted(c.per_model.items())
        }
    }


def _assistant_message(reply: ModelReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.tool_calls
        ]
    return message


def _differ(a: Any, b: Any) -> bool:
    """JSON inequality: ``false`` is not ``0`` and ``1.0`` is not ``1`` (Python's ``==``
    says they are), so a coerced value is always recorded beside what was sent."""
    return a is not b and canonical(a) != canonical(b)


def _backoff(attempt: int, retry_after_s: float | None) -> float:
    """Deterministic exponential backoff (no jitter: replay must reproduce it), honouring
    a server's Retry-After when it gives one."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), MAX_BACKOFF_S)
    return min(0.5 * 2 ** (attempt - 1), MAX_BACKOFF_S)


def _ms(seconds: float) -> float:
    """Milliseconds to the microsecond (``round(x, 3)`` takes three times as long)."""
    return round(seconds * 1_000_000) / 1000
