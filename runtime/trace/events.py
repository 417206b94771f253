"""Typed trace events: one pydantic class per event type, a discriminated union on ``type``.

Every event carries the envelope (``v``, ``seq``, ``ts``, ``run_id``, ``step``, ``type``,
``prev``, ``hash``). Producers build an event with its payload and ``step``; the trace
writer stamps the rest. Readers always go through :data:`AnyEvent`, never raw dicts.

Adding a field is backwards compatible: readers ignore unknown fields. Incompatible changes
bump :data:`SCHEMA_MAJOR`, and readers refuse a newer major version with a clear message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_MAJOR = 2
"""Major schema version written into ``v``. Readers refuse a larger one and read every
smaller one (see :data:`SCHEMA_1_TYPES`)."""

SCHEMA_MINOR = 1
"""Minor revision within the major, recorded in ``run_started.schema_minor``. A minor
revision only adds fields; replay does not count a field a record's revision did not have
as a divergence. Schema 1's revisions: 1 (absent), 2 (calls decided on their canonical
form, tool definitions recorded). Schema 2's: 0, 1 (:data:`REPLIES_JUDGED`; and the new
events ``mcp_server`` and ``approval_note``, which a record without them never holds)."""

Revision = tuple[int, int]
"""(major, minor): the schema revision a run was written in."""

CURRENT_REVISION: Revision = (SCHEMA_MAJOR, SCHEMA_MINOR)

REPLIES_JUDGED: Revision = (2, 1)
"""The revision from which a run judges what the model sends: a reply cut off by the token
limit, filtered, empty or holding a tool call written as text is no final answer
(``reply_refused``, ``text_tool_calls``); a rejected call is told the tools and their
arguments; tool schemas carry no length bounds. A record of an earlier revision replays
with the loop as it was then, so it replays identically."""

SCHEMA_1_TYPES = frozenset({"step_started", "tool_call_proposed", "policy_decision"})
"""Event types only schema 1 wrote. Schema 2 writes one ``tool_call`` per decided call in
place of ``tool_call_proposed`` + ``policy_decision``, and no ``step_started`` (a step
begins with its first event). Readers still read them: records are forever."""

SCHEMA_2_TYPES = frozenset(
    {"tool_call", "mcp_server", "approval_note", "reply_refused", "text_tool_calls"}
)
"""Event types schema 1 never wrote."""

ZERO_HASH = "0" * 64
"""``prev`` of the first event of every trace."""

ENVELOPE_FIELDS = ("v", "seq", "ts", "run_id", "step", "type", "prev", "hash")

FailureClass = Literal[
    "policy_denied",
    "unknown_tool",
    "invalid_arguments",
    "approval_rejected",
    "tool_error",
    "verification_failed",
    "missing_evidence",
    "budget_exceeded",
    "timeout",
    "anomaly",
    "model_error",
    "operator_stop",
    "divergence",
    "trace_error",
    "internal_error",
]
"""Why something failed. Every failure event and a failed ``run_finished`` carry one."""

FAILURE_CLASSES: tuple[str, ...] = FailureClass.__args__  # type: ignore[attr-defined]

RunStatus = Literal["completed", "failed", "stopped"]
Effect = Literal["allow", "deny", "ask"]
Risk = Literal["low", "medium", "high"]


def _absent(value: Any) -> bool:
    """Fields a minor revision added are left out of a line when unset, so an event that
    does not use one is written exactly as the revision before wrote it."""
    return value is None


class _Event(BaseModel):
    """Envelope shared by every event; the writer fills in everything but ``step``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int = Field(SCHEMA_MAJOR, description="Schema major version.")
    seq: int = Field(-1, description="Position in the trace: 0, 1, 2, ... with no gaps.")
    ts: str = Field(
        "",
        description="UTC write time (ISO 8601), from the clock port; events written together "
        "(held until the loop's next flush) share the first one's.",
    )
    run_id: str = Field("", description="The run this event belongs to; one run per trace.")
    step: int = Field(0, description="Governed step number; 0 for run-level events.")
    prev: str = Field("", description="Hash of the previous event (zeros for the first).")
    hash: str = Field("", description="SHA-256 of this event's canonical JSON without `hash`.")


# --- run and step lifecycle -------------------------------------------------------------


class RunStarted(_Event):
    """The run begins. Holds everything replay needs to rebuild it without the manifest file."""

    type: Literal["run_started"] = "run_started"
    agent: str = Field(description="Manifest `name`.")
    manifest: dict[str, Any] = Field(description="Resolved manifest snapshot (secrets redacted).")
    manifest_hash: str = Field(description="SHA-256 of the canonical manifest snapshot.")
    manifest_path: str | None = Field(None, description="Where the manifest was loaded from.")
    input: str = Field("", description="The task given to the agent.")
    govrun_version: str = Field("", description="Version of govrun that wrote the trace.")
    policy_hash: str | None = Field(None, description="SHA-256 of the policy section in force.")
    user: str | None = Field(None, description="OS user who started the run.")
    host: str | None = Field(None, description="Host the run started on.")
    parent: dict[str, Any] | None = Field(
        None, description="For forks and resumes: parent trace path, run id and step."
    )
    workspace: str | None = Field(
        None,
        exclude_if=_absent,
        description="The folder holding the run's copy of the manifest's `workspace:` "
        "template (TRACE.workspace); a fork or resume goes on in its parent's.",
    )
    schema_minor: int | None = Field(
        None,
        exclude_if=_absent,
        description="Minor schema revision that wrote the trace (absent: 1).",
    )
    tools: list[dict[str, Any]] | None = Field(
        None,
        exclude_if=_absent,
        description="The tool definitions the model was shown (name, description, parameters): "
        "what replay shows it again, without the tools' code. Since schema 1.2.",
    )


class StepStarted(_Event):
    """Schema 1: a governed step begins. (Schema 2 writes none: a step begins with its
    first event.)"""

    type: Literal["step_started"] = "step_started"


class StepFinished(_Event):
    """A governed step ends with what the loop decided to do next."""

    type: Literal["step_finished"] = "step_finished"
    outcome: Literal["continue", "final", "stop", "pause", "failed"] = Field(
        description="What the loop does after this step."
    )
    tokens: int = Field(0, description="Tokens used by this step's model calls.")
    cost_usd: float = Field(0.0, description="Cost of this step's model calls.")
    duration_ms: float = Field(0.0, description="Wall time of the step.")


class RunFinished(_Event):
    """The run ends. Its count and head let ``verify`` detect a trace cut short."""

    type: Literal["run_finished"] = "run_finished"
    status: RunStatus = Field(description="completed, failed or stopped.")
    failure_class: FailureClass | None = Field(None, description="Why the run failed or stopped.")
    reason: str = Field("", description="One-sentence explanation for people.")
    steps: int = Field(0, description="Governed steps taken.")
    event_count: int = Field(description="Events in the trace including this one (= seq + 1).")
    head: str = Field(description="Hash of the event before this one (= prev), stated explicitly.")
    final_answer: str | None = Field(None, description="The model's final answer, if any.")
    totals: dict[str, Any] = Field(
        default_factory=dict,
        description="model_calls, tool_calls, prompt_tokens, completion_tokens, tokens, cost_usd, "
        "denials, approvals, duration_ms.",
    )
    seal: dict[str, Any] | None = Field(
        None,
        description="Signature over run_id, event_count and head: key_fingerprint, "
        "public_key, key_source, signature (govrun.runtime.trace.signing.seal_message).",
    )


# --- model ------------------------------------------------------------------------------


class ModelRequest(_Event):
    """A prompt sent to the model: only the messages added since the previous request."""

    type: Literal["model_request"] = "model_request"
    model: str = Field(description="Model configuration name or model id.")
    messages_added: list[dict[str, Any]] = Field(
        description="Messages appended since the last request (the first holds the system prompt)."
    )
    message_count: int = Field(description="Messages in the whole prompt.")
    prompt_hash: str = Field(
        description="SHA-256 of the whole canonical prompt as recorded (secrets redacted), "
        "tools included."
    )
    attempt: int = Field(1, description="1 for the first try; retries count up.")


class ModelResponse(_Event):
    """The model's raw answer, recorded before any post-processing."""

    type: Literal["model_response"] = "model_response"
    model: str = Field(description="Model id that answered.")
    content: str | None = Field(None, description="Assistant text.")
    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list, description="Raw tool calls: id, name, arguments (unparsed string)."
    )
    finish_reason: str | None = Field(None, description="As reported by the model.")
    refusal: str | None = Field(
        None,
        exclude_if=_absent,
        description="The refusal text the API reported apart from the content (schema 2.1).",
    )
    usage: dict[str, int] = Field(
        default_factory=dict, description="prompt_tokens, completion_tokens, total_tokens."
    )
    estimated_usage: bool | None = Field(
        None,
        exclude_if=_absent,
        description="True when the server reported no usage and the counts are govrun's "
        "estimate (UTF-8 bytes / 4; schema 2.1).",
    )
    cost_usd: float = Field(0.0, description="Cost of this call from the manifest's price table.")
    attempt: int = Field(1, description="Which attempt this answers.")
    error: str | None = Field(None, description="Why the attempt failed (HTTP 429, timeout...).")
    failure_class: FailureClass | None = Field(None, description="Set when the attempt failed.")
    retryable: bool | None = Field(
        None, description="For a failed attempt: whether trying again could help (429, 5xx...)."
    )
    duration_ms: float = Field(0.0, description="Latency of the call.")


ReplyKind = Literal["length", "content_filter", "refusal", "empty", "text_tool_call"]


class ReplyRefused(_Event):
    """A reply without tool calls that is no final answer: cut off by the token limit,
    filtered, empty, or a tool call written as text. The model is told why and asked
    again; ``model.max_refused_replies`` in a row end the run (schema 2.1)."""

    type: Literal["reply_refused"] = "reply_refused"
    kind: ReplyKind = Field(
        description="length (the token limit cut it off), content_filter, refusal, empty "
        "(no text, no calls) or text_tool_call (a tool call written in the text)."
    )
    reason: str = Field(description="Why it is no answer: what the model is told.")
    finish_reason: str | None = Field(
        None, exclude_if=_absent, description="The finish reason the reply gave."
    )
    in_a_row: int = Field(description="Replies refused in a row, this one included.")
    limit: int = Field(description="How many in a row the manifest allows before it stops.")
    detected: dict[str, Any] | None = Field(
        None,
        exclude_if=_absent,
        description="For text_tool_call: the form found (json or hermes) and the calls, "
        "name and arguments as written.",
    )
    failure_class: FailureClass = Field(
        "model_error", description="model_error: the model sent no usable reply."
    )


class TextToolCalls(_Event):
    """Tool calls parsed from the reply's text (``model.tool_call_format``), for servers
    that write them as text: each is then decided like a native call, under its ``call_id``
    (schema 2.1)."""

    type: Literal["text_tool_calls"] = "text_tool_calls"
    format: Literal["json", "hermes"] = Field(description="The text form parsed.")
    calls: list[dict[str, Any]] = Field(
        description="The calls as parsed: id (text_<step>_<i>), name, arguments (JSON text)."
    )


# --- tools, policy, approvals -----------------------------------------------------------


class ToolCallProposed(_Event):
    """Schema 1: a tool call the model asked for, as sent and as its tool would execute it
    (schema 2: :class:`ToolCall`)."""

    type: Literal["tool_call_proposed"] = "tool_call_proposed"
    call_id: str = Field(description="The model's id for the call.")
    tool: str = Field(description="Tool name as the model gave it.")
    arguments: dict[str, Any] | None = Field(
        None, description="The arguments as the model sent them, parsed (if they parsed)."
    )
    raw_arguments: str | None = Field(None, description="Arguments as sent, if unparsable.")
    canonical: dict[str, Any] | None = Field(
        None,
        exclude_if=_absent,
        description="The canonical call policy judged and the tool runs (resolved "
        "root-relative paths, the argv, typed values), when it differs from `arguments`; "
        "absent when they are the same or the call left its scope. Since schema 1.2.",
    )
    call_hash: str = Field(
        "",
        description="SHA-256 of tool + canonical arguments + step (the arguments as sent for a "
        "call that never got a canonical form; before schema 1.2, always those).",
    )


class PolicyDecision(_Event):
    """Schema 1: policy's verdict on one proposed call (schema 2: ``ToolCall.decision``)."""

    type: Literal["policy_decision"] = "policy_decision"
    call_id: str = Field(description="Which call.")
    tool: str = Field(description="Tool name.")
    effect: Effect = Field(description="allow, deny or ask.")
    rule: str | None = Field(None, description="Id of the rule that decided; None for the default.")
    reason: str = Field("", description="Why, in words.")
    risk: Risk | None = Field(None, description="Risk level of the call.")
    failure_class: FailureClass | None = Field(
        None, description="policy_denied, unknown_tool or invalid_arguments when denied."
    )


class CallDecision(BaseModel):
    """What decided a call before anything ran: policy's effect and the rule behind it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    effect: Effect = Field(description="allow, deny or ask.")
    rule: str | None = Field(
        None,
        description="Id of the rule that decided; `scope` for the tool's own scope; "
        "None for the default or a rejection before policy.",
    )
    reason: str = Field("", description="Why, in words (what the model is told on a denial).")
    risk: Risk | None = Field(None, description="Risk level of the call.")
    failure_class: FailureClass | None = Field(
        None, description="policy_denied, unknown_tool or invalid_arguments when denied."
    )


class ToolCall(_Event):
    """One call the model proposed, as sent and as its tool would execute it, with the
    decision made on it (schema 2: one event per decided call)."""

    type: Literal["tool_call"] = "tool_call"
    call_id: str = Field(description="The model's id for the call.")
    tool: str = Field(description="Tool name as the model gave it.")
    arguments: dict[str, Any] | None = Field(
        None, description="The arguments as the model sent them, parsed (if they parsed)."
    )
    raw_arguments: str | None = Field(
        None, exclude_if=_absent, description="The arguments as sent, when they did not parse."
    )
    canonical: dict[str, Any] | None = Field(
        None,
        exclude_if=_absent,
        description="The canonical call policy judged and the tool runs (resolved "
        "root-relative paths, the argv, typed values), when it differs from `arguments`; "
        "absent when they are the same or the call never got one.",
    )
    call_hash: str = Field(
        "",
        description="SHA-256 of tool + canonical arguments + step (the arguments as sent "
        "for a call that never got a canonical form).",
    )
    decision: CallDecision = Field(description="allow, deny or ask, and why.")


class ApprovalRequested(_Event):
    """A call is waiting at the approval gate."""

    type: Literal["approval_requested"] = "approval_requested"
    call_id: str = Field(description="Which call.")
    tool: str = Field(description="Tool name.")
    call_hash: str = Field(description="SHA-256 of the exact call.")
    risk: Risk | None = Field(None, description="Risk level.")
    rule: str | None = Field(None, description="Rule that asked.")
    timeout_s: float | None = Field(None, description="How long the gate waits.")


class ApprovalDecided(_Event):
    """A decision at the approval gate: who, when, what exactly, why, and how it was reached."""

    type: Literal["approval_decided"] = "approval_decided"
    call_id: str = Field(description="Which call.")
    tool: str = Field(description="Tool name.")
    call_hash: str = Field(description="SHA-256 of the exact call approved or rejected.")
    decision: Literal["approve", "reject", "stop"] = Field(description="The decision.")
    approver: str = Field(description="Identity of who or what decided.")
    via: Literal["prompt", "auto", "deny", "rule", "timeout", "replay", "remote"] = Field(
        description="How the decision was reached (remote: by `govrun approve` / `reject`, "
        "signed with the decider's own key)."
    )
    reason: str = Field("", description="Why, as given by the approver.")
    decided_at: str = Field("", description="UTC time of the decision.")
    policy_hash: str | None = Field(None, description="SHA-256 of the policy in force.")
    key_fingerprint: str | None = Field(None, description="sha256: fingerprint of the key.")
    public_key: str | None = Field(None, description="Base64 Ed25519 public key that signed.")
    key_source: str | None = Field(
        None, description="Where the key came from: file:PATH or ephemeral (one run only)."
    )
    signature: str | None = Field(
        None,
        description="Base64 Ed25519 signature over govrun.runtime.trace.signing.approval_message.",
    )


class ApprovalNote(_Event):
    """Something that happened while a call waited at the gate, before its decision: a
    decision from elsewhere the run refused (and why), or what the notifier did."""

    type: Literal["approval_note"] = "approval_note"
    call_id: str = Field(description="The call waiting at the gate.")
    kind: Literal["refused", "notified"] = Field(
        description="refused: a decision sent from elsewhere was not applied; notified: the "
        "`approvals.notify` command or URL was called."
    )
    detail: str = Field(description="What happened, in words.")
    ok: bool | None = Field(None, exclude_if=_absent, description="notified: whether it worked.")
    by: str | None = Field(None, exclude_if=_absent, description="refused: who sent it.")
    key_fingerprint: str | None = Field(
        None, exclude_if=_absent, description="refused: the key it was signed with, if any."
    )


class ToolStarted(_Event):
    """Write-ahead record: durable on disk before the side effect begins. It names the call
    (its ``tool_call`` holds what it is)."""

    type: Literal["tool_started"] = "tool_started"
    call_id: str = Field(description="Which call.")
    call_hash: str = Field(description="SHA-256 of the exact call.")
    tool: str | None = Field(None, exclude_if=_absent, description="Schema 1: the tool name.")
    arguments: dict[str, Any] | None = Field(
        None,
        exclude_if=_absent,
        description="Schema 1: the call that ran (before 1.2: the validated arguments).",
    )


class ToolFinished(_Event):
    """The outcome of a call, as the model will see it, with evidence of what happened."""

    type: Literal["tool_finished"] = "tool_finished"
    call_id: str = Field(description="Which call.")
    tool: str = Field(description="Tool name.")
    ok: bool = Field(description="Whether the call succeeded.")
    output: str = Field("", description="What the model is shown.")
    data: dict[str, Any] = Field(default_factory=dict, description="Structured result.")
    evidence: dict[str, Any] = Field(default_factory=dict, description="What the tool did.")
    error: str | None = Field(None, description="Error message when not ok.")
    failure_class: FailureClass | None = Field(None, description="Set when not ok.")
    duration_ms: float = Field(0.0, description="How long the call took.")


class Verification(_Event):
    """One check of a call's outcome or of run completion, with its evidence."""

    type: Literal["verification"] = "verification"
    call_id: str | None = Field(None, description="The call checked; None for `success:` checks.")
    check: str = Field(description="Check kind, e.g. file_exists.")
    check_id: str | None = Field(None, description="Id given in the manifest, if any.")
    passed: bool = Field(description="Whether the check held.")
    evidence: dict[str, Any] = Field(default_factory=dict, description="What was observed.")
    detail: str = Field("", description="Explanation for people.")
    failure_class: FailureClass | None = Field(
        None, description="verification_failed or missing_evidence when not passed."
    )


# --- control ----------------------------------------------------------------------------


class Interrupt(_Event):
    """A budget, anomaly rule or operator request paused or stopped the run."""

    type: Literal["interrupt"] = "interrupt"
    kind: Literal["budget", "anomaly", "operator", "policy"] = Field(description="What fired.")
    rule: str = Field(description="Which budget or rule, e.g. max_steps or repeat_call.")
    action: Literal["pause", "stop", "resume"] = Field(description="What it does to the run.")
    reason: str = Field("", description="Why, in words.")
    failure_class: FailureClass | None = Field(None, description="Set when it stops the run.")
    by: str | None = Field(None, description="Who, for operator actions.")
    detail: dict[str, Any] = Field(default_factory=dict, description="Limit, observed value...")


class Route(_Event):
    """Which model configuration handles the next step, and why."""

    type: Literal["route"] = "route"
    model: str = Field(description="Chosen model configuration.")
    previous: str | None = Field(None, description="The configuration used before.")
    reason: str = Field("", description="The routing rule or default that chose it.")


class Compaction(_Event):
    """The context was compacted."""

    type: Literal["compaction"] = "compaction"
    strategy: str = Field(description="truncate or summarize.")
    tokens_before: int = Field(description="Estimated prompt tokens before.")
    tokens_after: int = Field(description="Estimated prompt tokens after.")
    messages_removed: int = Field(0, description="Messages replaced.")
    turns_replaced: int = Field(0, description="Turns (assistant message + tool results) replaced.")
    summary: str | None = Field(None, description="The summary that replaced them.")
    model: str | None = Field(None, description="summarize: the model that wrote the summary.")
    usage: dict[str, int] = Field(default_factory=dict, description="summarize: its tokens.")
    cost_usd: float = Field(0.0, description="summarize: its cost.")
    error: str | None = Field(None, description="Why summarizing failed (truncated instead).")


RollbackAction = Literal["restored", "removed", "undone", "refused", "skipped", "failed"]


class McpServer(_Event):
    """An MCP server the run uses, as the run found it (step 0, after ``run_started``): the
    tools it exposes under their manifest names with each definition and its SHA-256, what
    else it offers, and how that compares with the pins in the lock file — the record replay
    answers from, starting no server. With ``error``, the server could not be used and the
    run ends."""

    type: Literal["mcp_server"] = "mcp_server"
    server: str = Field(description="Its name under `mcp_servers:`.")
    transport: Literal["stdio", "http"] = Field(description="How govrun talks to it.")
    server_info: dict[str, Any] | None = Field(
        None, exclude_if=_absent, description="The name and version it gave at initialize."
    )
    tools: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Each exposed tool: its manifest `name`, the server's `tool` name, the "
        "`definition` (name, description, inputSchema, annotations), its `sha256`, and "
        "`changed` when it differs from its pin.",
    )
    offered: dict[str, str] = Field(
        default_factory=dict, description="Every tool the server offers -> definition SHA-256."
    )
    lock: Literal["pinned", "changed", "unpinned"] | None = Field(
        None,
        exclude_if=_absent,
        description="pinned: every tool matches the lock; changed: see `changes`; "
        "unpinned: the lock holds nothing for this server (or there is no lock).",
    )
    lock_file: str | None = Field(None, exclude_if=_absent, description="The lock's file name.")
    changes: list[dict[str, Any]] | None = Field(
        None,
        exclude_if=_absent,
        description="What differs from the pins: tool, change (changed, added, removed), "
        "fields and detail.",
    )
    error: str | None = Field(
        None,
        exclude_if=_absent,
        description="Why the server cannot be used (did not start, offers no such tool), with "
        "the tail of its stderr.",
    )


class Rollback(_Event):
    """One recorded effect was undone (or refused). Written by `govrun rollback` into a new
    trace, or by the run itself (`on_failure: rollback`) before `run_finished`; the envelope
    `step` is when it happened, `call_step` the step of the call undone."""

    type: Literal["rollback"] = "rollback"
    call_id: str = Field(description="The call whose effect is undone.")
    target: str = Field(description="File path or command undone.")
    ok: bool = Field(description="Whether the undo happened.")
    reason: str = Field("", description="What was done, or why it was refused.")
    call_step: int | None = Field(None, description="The step of the call undone.")
    tool: str | None = Field(None, description="The tool whose effect is undone.")
    kind: Literal["restore", "remove", "command", "irreversible"] | None = Field(
        None, description="The recorded undo (tool_finished evidence.undo.kind)."
    )
    action: RollbackAction | None = Field(None, description="What rollback did.")
    forced: bool = Field(False, description="Done although the file changed since the run.")
    failure_class: FailureClass | None = Field(
        None,
        description="verification_failed: the file changed since the run (refused); "
        "policy_denied: a symlink on the way; missing_evidence: irreversible or no "
        "pre-image; tool_error: the undo itself failed.",
    )
    evidence: dict[str, Any] = Field(
        default_factory=dict, description="What was found and done: hashes, exit code."
    )


AnyEvent = Annotated[
    RunStarted
    | StepStarted
    | ModelRequest
    | ModelResponse
    | ReplyRefused
    | TextToolCalls
    | ToolCall
    | ToolCallProposed
    | PolicyDecision
    | ApprovalRequested
    | ApprovalDecided
    | ApprovalNote
    | ToolStarted
    | ToolFinished
    | Verification
    | Interrupt
    | Route
    | Compaction
    | Rollback
    | McpServer
    | StepFinished
    | RunFinished,
    Field(discriminator="type"),
]
"""Any trace event, discriminated on ``type``."""

Event = _Event
"""Base class of all events (for type hints)."""

EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)

EVENT_TYPES: dict[str, type[_Event]] = {
    cls.model_fields["type"].default: cls  # type: ignore[misc]
    for cls in _Event.__subclasses__()
}


def parse_event(data: dict[str, Any]) -> _Event:
    """Validate one decoded event through the union (raises pydantic.ValidationError)."""
    return EVENT_ADAPTER.validate_python(data)


BLOB_REF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A payload string stored in the trace's .blobs folder, by SHA-256.",
    "properties": {
        "$blob": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "size": {"type": "integer", "minimum": 0},
    },
    "required": ["$blob", "size"],
}


def events_json_schema() -> dict[str, Any]:
    """JSON Schema for one trace line as stored, for other tools that read traces: any
    payload string may instead be a reference to a sidecar blob."""
    schema = EVENT_ADAPTER.json_schema(mode="serialization")
    for definition in schema.get("$defs", {}).values():
        for name, prop in definition.get("properties", {}).items():
            if name not in ENVELOPE_FIELDS:
                definition["properties"][name] = _or_blob(prop)
    defs = schema.setdefault("$defs", {})
    defs["BlobRef"] = BLOB_REF_SCHEMA
    for cls in EVENT_TYPES.values():  # which major holds which types, in the schema itself
        props = defs.get(cls.__name__, {}).get("properties", {})
        if "v" not in props:
            continue
        kind = cls.model_fields["type"].default
        if kind in SCHEMA_1_TYPES:
            v = {k: x for k, x in props["v"].items() if k != "default"}
            props["v"] = {**v, "const": 1, "description": "Schema 1 only."}
        elif kind in SCHEMA_2_TYPES:
            props["v"] = {**props["v"], "minimum": 2, "description": "Schema 2 on."}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"govrun trace event (schema v{SCHEMA_MAJOR})"
    schema["description"] = (
        f"One line of a govrun trace. This version writes schema {SCHEMA_MAJOR} and reads "
        "schema 1 too: step_started, tool_call_proposed and policy_decision are schema-1 "
        "events (v 1); tool_call, mcp_server, approval_note, reply_refused and "
        "text_tool_calls are schema 2's."
    )
    return schema


def _or_blob(node: dict[str, Any]) -> dict[str, Any]:
    if node.get("type") == "string":
        extra = {k: v for k, v in node.items() if k in ("title", "description", "default")}
        plain = {k: v for k, v in node.items() if k not in extra}
        return {**extra, "anyOf": [plain, {"$ref": "#/$defs/BlobRef"}]}
    if "anyOf" in node:
        return {**node, "anyOf": [_or_blob(member) for member in node["anyOf"]]}
    return node
