"""Trace events to spans, following the OpenTelemetry GenAI semantic conventions.

One root ``invoke_agent {agent}`` span per run; under it a ``chat {model}`` span per model
call (its retries inside, as events) and an ``execute_tool {tool}`` span per decided call —
a denied or rejected call too, ended at its decision, failed with its failure class and
``govrun.tool.executed`` false. govrun's own facts are ``govrun.*`` attributes and span
events: the decision, the approval, each check, interrupts, routes, compactions, rollbacks,
and on the root the trace's path and head hash.

:class:`SpanMapper` is fed events one by one and hands back each span as it ends, so the
same code serves a finished trace and a live run (whose spans then have the ids and times
an export of its trace afterwards gives). It reads typed events only and keeps no more than
the spans still open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from govrun.runtime.trace import events as ev
from govrun.runtime.views.telemetry.content import (
    as_json,
    input_messages,
    output_message,
    text_message,
)
from govrun.runtime.views.telemetry.ids import ROOT_SEQ, Times, span_id, trace_id
from govrun.runtime.views.telemetry.spans import SpanEvent, SpanLink, SpanPlan, clean

PROVIDERS = {"openai": "openai", "scripted": "govrun.scripted"}
"""``gen_ai.provider.name`` per manifest provider. An OpenAI-compatible server is reached
through the OpenAI API, which is what the convention names; a scripted model is govrun's."""


@dataclass
class _Call:
    span: SpanPlan
    last_ns: int
    executed: bool = False


@dataclass
class _Chat:
    span: SpanPlan
    last_ns: int
    failed: ev.ModelResponse | None = None
    attempts: int = 0
    cost: float = 0.0


@dataclass
class _Run:
    run_id: str
    trace: int
    root: SpanPlan
    manifest: dict[str, Any]
    chat: _Chat | None = None
    calls: dict[tuple[int, str], _Call] = field(default_factory=dict)
    last_ns: int = 0
    head: str = ""
    count: int = 0


class SpanMapper:
    """Feed it a run's events in order; it returns the spans that each event ends."""

    def __init__(self, *, trace_path: str, content: bool = False) -> None:
        self.trace_path = trace_path
        self.content = content
        self._times = Times()
        self._run: _Run | None = None

    # --- the stream ---------------------------------------------------------------------

    def feed(self, event: ev.Event) -> list[SpanPlan]:
        """Take the next event; return the spans it completes."""
        at = self._times.ns(event.ts)
        if isinstance(event, ev.RunStarted):
            self._run = self._start(event, at)
            return []
        run = self._run
        if run is None:  # a trace must begin with run_started; readers refuse others
            return []
        run.last_ns, run.head, run.count = max(run.last_ns, at), event.hash, run.count + 1
        done: list[SpanPlan] = []
        if not isinstance(event, ev.ModelRequest | ev.ModelResponse):
            done += self._end_failed_chat(run)
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            done += handler(self, run, event, at)
        return done

    def close(self) -> list[SpanPlan]:
        """The spans still open when the events ran out: a trace without ``run_finished``
        (crashed, or the live run stopped being written) ends them at its last event."""
        run, self._run = self._run, None
        if run is None:
            return []
        done = self._end_failed_chat(run)
        if run.chat is not None:
            chat, run.chat = run.chat, None
            chat.span.fail("the trace ends during this model call", "trace_error")
            done.append(_ended(chat.span, chat.last_ns))
        for call in run.calls.values():
            what = "running" if call.executed else "waiting"
            call.span.fail(f"the trace ends with this call {what}", "trace_error")
            done.append(_ended(call.span, call.last_ns))
        run.calls.clear()
        root = run.root
        root.attributes.update(
            {
                "govrun.run.status": "unfinished",
                "govrun.trace.head": run.head,
                "govrun.trace.event_count": run.count + 1,
            }
        )
        root.fail("the trace ends without run_finished: the run crashed or is still going")
        done.append(_ended(root, run.last_ns))
        return done

    def map_all(self, events: Iterable[ev.Event]) -> list[SpanPlan]:
        """Every span of a whole trace, in the order they end (the root last)."""
        spans: list[SpanPlan] = []
        for event in events:
            spans += self.feed(event)
        return spans + self.close()

    # --- run ----------------------------------------------------------------------------

    def _start(self, e: ev.RunStarted, at: int) -> _Run:
        tid = trace_id(e.run_id)
        model = e.manifest.get("model") if isinstance(e.manifest.get("model"), dict) else {}
        root = SpanPlan(
            name=f"invoke_agent {e.agent}",
            trace_id=tid,
            span_id=span_id(e.run_id, ROOT_SEQ),
            parent_id=None,
            kind="internal",
            start_ns=at,
            attributes=clean(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": e.agent,
                    "gen_ai.agent.description": e.manifest.get("description"),
                    "gen_ai.conversation.id": e.run_id,
                    "gen_ai.provider.name": PROVIDERS.get(str(model.get("provider"))),
                    "gen_ai.request.model": model.get("name"),
                    "govrun.run_id": e.run_id,
                    "govrun.trace.path": self.trace_path,
                    "govrun.trace.schema": e.v,
                    "govrun.manifest_hash": e.manifest_hash,
                    "govrun.manifest_path": e.manifest_path,
                    "govrun.policy_hash": e.policy_hash,
                    "govrun.version": e.govrun_version or None,
                    "govrun.user": e.user,
                    "govrun.host": e.host,
                }
            ),
        )
        if self.content and e.input:
            root.attributes["gen_ai.input.messages"] = as_json([text_message("user", e.input)])
        if self.content and e.manifest.get("system"):
            root.attributes["gen_ai.system_instructions"] = as_json(
                [{"type": "text", "content": e.manifest["system"]}]
            )
        parent = e.parent or {}
        if parent.get("run_id"):
            described = clean(
                {
                    "govrun.parent.kind": parent.get("kind"),
                    "govrun.parent.run_id": parent.get("run_id"),
                    "govrun.parent.trace": parent.get("trace"),
                    "govrun.parent.step": parent.get("step"),
                    "govrun.parent.head": parent.get("head"),
                }
            )
            root.attributes.update(described)
            parent_run = str(parent["run_id"])
            root.links.append(
                SpanLink(trace_id(parent_run), span_id(parent_run, ROOT_SEQ), described)
            )
        return _Run(e.run_id, tid, root, e.manifest, last_ns=at, head=e.hash)

    def _finished(self, run: _Run, e: ev.RunFinished, at: int) -> list[SpanPlan]:
        done = self._end_calls(run, lambda _key: True)
        totals = e.totals
        root = run.root
        root.attributes.update(
            clean(
                {
                    "govrun.run.status": e.status,
                    "govrun.run.reason": e.reason or None,
                    "govrun.failure_class": e.failure_class,
                    "govrun.steps": e.steps,
                    "govrun.trace.head": e.hash,
                    "govrun.trace.event_count": e.event_count,
                    "govrun.seal.key_fingerprint": (e.seal or {}).get("key_fingerprint"),
                    "gen_ai.usage.input_tokens": _int(totals.get("prompt_tokens")),
                    "gen_ai.usage.output_tokens": _int(totals.get("completion_tokens")),
                    "govrun.cost_usd": _float(totals.get("cost_usd")),
                    "govrun.model_calls": _int(totals.get("model_calls")),
                    "govrun.tool_calls": _int(totals.get("tool_calls")),
                    "govrun.denials": _int(totals.get("denials")),
                    "govrun.approvals": _int(totals.get("approvals")),
                }
            )
        )
        if self.content and e.final_answer:
            root.attributes["gen_ai.output.messages"] = as_json(
                [{**text_message("assistant", e.final_answer), "finish_reason": "stop"}]
            )
        if e.status == "completed":
            root.status = "ok"
        else:
            reason = f"{e.failure_class}: {e.reason}" if e.failure_class else e.reason
            root.fail(reason or e.status, e.failure_class or "_OTHER")
        self._run = None
        return [*done, _ended(root, at)]

    # --- model --------------------------------------------------------------------------

    def _request(self, run: _Run, e: ev.ModelRequest, at: int) -> list[SpanPlan]:
        if run.chat is not None:  # a retry: same call, same span
            run.chat.last_ns = at
            return []
        provider, model = _model_of(run.manifest, e.model)
        span = SpanPlan(
            name=f"chat {model}",
            trace_id=run.trace,
            span_id=span_id(run.run_id, e.seq),
            parent_id=run.root.span_id,
            kind="internal" if provider == "govrun.scripted" else "client",
            start_ns=at,
            attributes=clean(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": provider,
                    "gen_ai.request.model": model,
                    "gen_ai.conversation.id": run.run_id,
                    "govrun.step": e.step,
                    "govrun.model.config": e.model if e.model != model else None,
                    "govrun.prompt_hash": e.prompt_hash,
                    "govrun.message_count": e.message_count,
                }
            ),
        )
        if self.content:
            span.attributes["gen_ai.input.messages"] = as_json(input_messages(e.messages_added))
        run.chat = _Chat(span, at)
        return []

    def _response(self, run: _Run, e: ev.ModelResponse, at: int) -> list[SpanPlan]:
        chat = run.chat
        if chat is None:
            return []
        chat.attempts, chat.cost, chat.last_ns = chat.attempts + 1, chat.cost + e.cost_usd, at
        span = chat.span
        if e.error is not None:
            span.events.append(
                SpanEvent(
                    "govrun.model.attempt_failed",
                    at,
                    clean(
                        {
                            "govrun.attempt": e.attempt,
                            "error.type": e.failure_class or "_OTHER",
                            "govrun.error": e.error,
                            "govrun.retryable": e.retryable,
                            "govrun.duration_ms": e.duration_ms,
                        }
                    ),
                )
            )
            chat.failed = e
            return []
        run.chat = None
        span.attributes.update(
            clean(
                {
                    "gen_ai.response.model": e.model,
                    "gen_ai.response.finish_reasons": [e.finish_reason] if e.finish_reason else [],
                    "gen_ai.usage.input_tokens": _int(e.usage.get("prompt_tokens")),
                    "gen_ai.usage.output_tokens": _int(e.usage.get("completion_tokens")),
                    "govrun.cost_usd": chat.cost,
                    "govrun.attempts": chat.attempts,
                    "govrun.tool_calls_proposed": len(e.tool_calls),
                }
            )
        )
        if self.content:
            span.attributes["gen_ai.output.messages"] = as_json([output_message(e)])
        return [_ended(span, at)]

    def _end_failed_chat(self, run: _Run) -> list[SpanPlan]:
        """A model call whose last attempt failed ends at the first event that is not
        another attempt."""
        chat = run.chat
        if chat is None or chat.failed is None:
            return []
        run.chat = None
        failed = chat.failed
        chat.span.attributes["govrun.attempts"] = chat.attempts
        chat.span.attributes["govrun.cost_usd"] = chat.cost
        chat.span.fail(failed.error or "the model call failed", failed.failure_class or "_OTHER")
        return [_ended(chat.span, chat.last_ns)]

    # --- calls --------------------------------------------------------------------------

    def _decided(self, run: _Run, e: ev.ToolCall, at: int) -> list[SpanPlan]:
        d = e.decision
        span = SpanPlan(
            name=f"execute_tool {e.tool}",
            trace_id=run.trace,
            span_id=span_id(run.run_id, e.seq),
            parent_id=run.root.span_id,
            kind="internal",
            start_ns=at,
            attributes=clean(
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": e.tool,
                    "gen_ai.tool.call.id": e.call_id,
                    "gen_ai.tool.type": "function",
                    "govrun.step": e.step,
                    "govrun.call_hash": e.call_hash or None,
                    "govrun.policy.effect": d.effect,
                    "govrun.policy.rule": d.rule,
                    "govrun.policy.reason": d.reason or None,
                    "govrun.risk": d.risk,
                    "govrun.tool.executed": False,
                }
            ),
        )
        if self.content:
            arguments = e.canonical if e.canonical is not None else e.arguments
            span.attributes["gen_ai.tool.call.arguments"] = (
                as_json(arguments) if arguments is not None else str(e.raw_arguments or "")
            )
        if d.effect == "deny":
            span.fail(d.reason or "denied", d.failure_class or "policy_denied")
            return [_ended(span, at)]
        run.calls[(e.step, e.call_id)] = _Call(span, at)
        return []

    def _asked(self, run: _Run, e: ev.ApprovalRequested, at: int) -> list[SpanPlan]:
        call = self._call(run, e.step, e.call_id, at)
        if call is not None:
            call.span.events.append(
                SpanEvent(
                    "govrun.approval.requested",
                    at,
                    clean({"govrun.approval.timeout_s": e.timeout_s, "govrun.risk": e.risk}),
                )
            )
        return []

    def _approval(self, run: _Run, e: ev.ApprovalDecided, at: int) -> list[SpanPlan]:
        call = self._call(run, e.step, e.call_id, at)
        if call is None:
            return []
        facts = clean(
            {
                "govrun.approval.decision": e.decision,
                "govrun.approval.via": e.via,
                "govrun.approval.approver": e.approver,
                "govrun.approval.reason": e.reason or None,
                "govrun.approval.decided_at": e.decided_at or None,
                "govrun.approval.key_fingerprint": e.key_fingerprint,
                "govrun.approval.key_source": e.key_source,
                "govrun.approval.signed": e.signature is not None,
            }
        )
        call.span.attributes.update(facts)
        call.span.events.append(SpanEvent("govrun.approval.decided", at, facts))
        if e.decision == "approve":
            return []
        del run.calls[(e.step, e.call_id)]
        why = f"{e.decision} by {e.approver}" + (f": {e.reason}" if e.reason else "")
        kind = "approval_rejected" if e.decision == "reject" else "operator_stop"
        call.span.fail(why, kind)
        return [_ended(call.span, at)]

    def _started(self, run: _Run, e: ev.ToolStarted, at: int) -> list[SpanPlan]:
        call = self._call(run, e.step, e.call_id, at)
        if call is not None:
            call.executed = True
            call.span.attributes["govrun.tool.executed"] = True
            call.span.events.append(SpanEvent("govrun.tool.started", at, {}))
        return []

    def _tool_finished(self, run: _Run, e: ev.ToolFinished, at: int) -> list[SpanPlan]:
        call = self._call(run, e.step, e.call_id, at)
        if call is None:
            return []
        span = call.span
        span.attributes.update(
            clean(
                {
                    "govrun.tool.ok": e.ok,
                    "govrun.tool.duration_ms": e.duration_ms,
                    **_hashes("govrun.evidence", e.evidence),
                }
            )
        )
        if self.content:
            span.attributes["gen_ai.tool.call.result"] = e.output
        if not e.ok:
            span.fail(e.error or "the tool failed", e.failure_class or "tool_error")
        return []

    def _check(self, run: _Run, e: ev.Verification, at: int) -> list[SpanPlan]:
        facts = clean(
            {
                "govrun.check": e.check,
                "govrun.check.id": e.check_id,
                "govrun.check.passed": e.passed,
                "govrun.check.detail": e.detail or None,
                "govrun.failure_class": e.failure_class,
                "govrun.step": e.step,
                **_hashes("govrun.check.evidence", e.evidence),
            }
        )
        call = self._call(run, e.step, e.call_id, at) if e.call_id is not None else None
        span = call.span if call is not None else run.root
        span.events.append(SpanEvent("govrun.verification", at, facts))
        if not e.passed:
            failure = e.failure_class or "verification_failed"
            span.attributes["govrun.verification.failed"] = (
                _int(span.attributes.get("govrun.verification.failed")) or 0
            ) + 1
            if call is not None:
                span.fail(f"check {e.check_id or e.check}: {e.detail}", failure)
        return []

    def _step_finished(self, run: _Run, e: ev.StepFinished, at: int) -> list[SpanPlan]:
        return self._end_calls(run, lambda key: key[0] <= e.step)

    def _end_calls(self, run: _Run, which: Callable[[tuple[int, str]], bool]) -> list[SpanPlan]:
        ended = [key for key in run.calls if which(key)]
        return [_ended(run.calls.pop(key).span, 0) for key in ended]

    def _call(self, run: _Run, step: int, call_id: str, at: int) -> _Call | None:
        call = run.calls.get((step, call_id))
        if call is not None:
            call.last_ns = at
            call.span.end_ns = at
        return call

    # --- what happened to the run -------------------------------------------------------

    def _interrupt(self, run: _Run, e: ev.Interrupt, at: int) -> list[SpanPlan]:
        _root_event(
            run,
            "govrun.interrupt",
            at,
            {
                "govrun.interrupt.kind": e.kind,
                "govrun.interrupt.rule": e.rule,
                "govrun.interrupt.action": e.action,
                "govrun.interrupt.reason": e.reason or None,
                "govrun.interrupt.by": e.by,
                "govrun.failure_class": e.failure_class,
                "govrun.step": e.step,
            },
        )
        return []

    def _route(self, run: _Run, e: ev.Route, at: int) -> list[SpanPlan]:
        _root_event(
            run,
            "govrun.route",
            at,
            {
                "govrun.route.model": e.model,
                "govrun.route.previous": e.previous,
                "govrun.route.reason": e.reason or None,
                "govrun.step": e.step,
            },
        )
        return []

    def _compaction(self, run: _Run, e: ev.Compaction, at: int) -> list[SpanPlan]:
        _root_event(
            run,
            "govrun.compaction",
            at,
            {
                "govrun.compaction.strategy": e.strategy,
                "govrun.compaction.tokens_before": e.tokens_before,
                "govrun.compaction.tokens_after": e.tokens_after,
                "govrun.compaction.messages_removed": e.messages_removed,
                "govrun.compaction.model": e.model,
                "govrun.compaction.error": e.error,
                "govrun.step": e.step,
            },
        )
        return []

    def _rollback(self, run: _Run, e: ev.Rollback, at: int) -> list[SpanPlan]:
        _root_event(
            run,
            "govrun.rollback",
            at,
            {
                "govrun.rollback.call_id": e.call_id,
                "govrun.rollback.call_step": e.call_step,
                "govrun.rollback.tool": e.tool,
                "govrun.rollback.target": e.target,
                "govrun.rollback.ok": e.ok,
                "govrun.rollback.action": e.action,
                "govrun.rollback.reason": e.reason or None,
                "govrun.failure_class": e.failure_class,
                "govrun.step": e.step,
            },
        )
        return []


_HANDLERS: dict[type[ev.Event], Any] = {
    ev.RunFinished: SpanMapper._finished,
    ev.ModelRequest: SpanMapper._request,
    ev.ModelResponse: SpanMapper._response,
    ev.ToolCall: SpanMapper._decided,
    ev.ApprovalRequested: SpanMapper._asked,
    ev.ApprovalDecided: SpanMapper._approval,
    ev.ToolStarted: SpanMapper._started,
    ev.ToolFinished: SpanMapper._tool_finished,
    ev.Verification: SpanMapper._check,
    ev.StepFinished: SpanMapper._step_finished,
    ev.Interrupt: SpanMapper._interrupt,
    ev.Route: SpanMapper._route,
    ev.Compaction: SpanMapper._compaction,
    ev.Rollback: SpanMapper._rollback,
}
"""What each event type does to the spans. Schema-1 shapes never arrive here: a schema-1
record is read as schema 2 first (:mod:`govrun.runtime.trace.upgrade`)."""


# --- helpers ------------------------------------------------------------------------------


def _ended(span: SpanPlan, at: int) -> SpanPlan:
    span.end_ns = max(span.end_ns, at, span.start_ns)
    return span


def _root_event(run: _Run, name: str, at: int, attributes: dict[str, Any]) -> None:
    run.root.events.append(SpanEvent(name, at, clean(attributes)))


def _model_of(manifest: dict[str, Any], requested: str) -> tuple[str | None, str]:
    """(provider, model name) of a model request: ``requested`` names a configuration under
    `models:` or is the model's own name."""
    models = manifest.get("models")
    config = models.get(requested) if isinstance(models, dict) else None
    if not isinstance(config, dict):
        config = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    provider = PROVIDERS.get(str(config.get("provider")))
    return provider, str(config.get("name") or requested)


def _hashes(prefix: str, evidence: dict[str, Any]) -> dict[str, Any]:
    """The evidence's hashes (``sha256``, ``stdout_sha256``, ...): what points at proof."""
    return {
        f"{prefix}.{key}": value
        for key, value in sorted(evidence.items())
        if "sha256" in key and isinstance(value, str)
    }


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
