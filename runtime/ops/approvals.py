"""Approvals from anywhere: a run waits at the gate for a person who decides from another
terminal (`govrun approve` / `govrun reject`), with a signed record of who it was.

The protocol, as built (the same shape as `govrun ctl`'s, see :mod:`.control`):

- **Channel.** A folder ``<trace>.approvals.d/`` next to the trace (0700). While a call waits
  the run keeps ``pending.json`` there (0600): the request exactly as the inline prompt
  shows it, the policy hash, since when and until when it waits. A decision is one file in
  ``decisions/``, written under a dot name and renamed in.
- **Decisions are signed by the decider** with their own key (``govrun keys init`` on their
  account), over exactly the fields the run records in ``approval_decided`` (run, step, call
  id, tool, call hash, policy hash, decision, ``via: remote``, approver, reason, time). The run
  verifies the signature and that every field matches the call it is waiting on; with
  ``approvals.trusted_keys`` the key must be listed there. A decision that fails any check —
  a wrong call hash, a call no longer pending, an unlisted key, a forged or unreadable file —
  is not applied: it is recorded as an ``approval_note`` (refused, with why), and the decider
  is told through the run registry (``handled``), as ``ctl`` is.
- **Waiting** is a poll of the folder every :data:`POLL_S`, paused, not spinning, until the
  decision or ``approvals.timeout_s``, after which ``on_timeout`` decides per risk level,
  recorded as a timeout. On a terminal the inline prompt asks at the same time; the first
  decision wins and the other side is told.
- **Notify.** ``approvals.notify`` runs a command (argv, no shell) and/or POSTs JSON to a URL
  when a call starts waiting, in a thread of its own with its own timeout: a notifier that
  fails or hangs is recorded and never delays the run.

The channel is a port (:class:`ApprovalChannel`): the file spool serves one machine or a
shared folder; a distributed backend plugs in its own. Replay answers from the record.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from govrun.runtime.errors import GovrunError
from govrun.runtime.ports import ApprovalDecision, ApprovalRequest, Approver
from govrun.runtime.trace.signing import (
    APPROVAL_FIELDS,
    Signer,
    approval_message,
    fingerprint,
    verify_signature,
)

POLL_S = 0.1
MAX_DECISION_BYTES = 32 * 1024
MAX_REASON = 2000
MAX_BY = 200
NOTIFY_OUTPUT = 400

Decision = Literal["approve", "reject"]


def approvals_folder(trace: str | Path) -> Path:
    """Where the run writing ``trace`` takes decisions: ``run.jsonl.approvals.d/``."""
    p = Path(trace)
    return p.with_name(p.name + ".approvals.d")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- what waits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """A call waiting at the gate, as the run published it."""

    run_id: str
    step: int
    call_id: str
    tool: str
    call_hash: str
    policy_hash: str | None
    risk: str
    rule: str | None
    since: str
    deadline: str | None
    trace: str
    request: dict[str, Any]
    """The :class:`ApprovalRequest` as the inline prompt shows it."""

    @classmethod
    def of(
        cls,
        request: ApprovalRequest,
        *,
        policy_hash: str | None,
        trace: str = "",
        since: str = "",
        deadline: str | None = None,
    ) -> Pending:
        """The pending form of a request at the gate."""
        return cls(
            run_id=request.run_id,
            step=request.step,
            call_id=request.call_id,
            tool=request.tool,
            call_hash=request.call_hash,
            policy_hash=policy_hash,
            risk=request.risk,
            rule=request.rule,
            since=since,
            deadline=deadline,
            trace=trace,
            request=request.model_dump(mode="json"),
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pending:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def seconds_left(self, now: datetime | None = None) -> float | None:
        if self.deadline is None:
            return None
        end = datetime.fromisoformat(self.deadline.replace("Z", "+00:00"))
        return (end - (now or datetime.now(UTC))).total_seconds()


def read_pending(folder: Path) -> Pending | None:
    """The call the run behind ``folder`` waits on, or None."""
    try:
        return Pending.from_dict(orjson.loads((folder / "pending.json").read_bytes()))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return None


# --- the decider's side --------------------------------------------------------------------


def is_name(by: object) -> bool:
    """Whether ``by`` can name a decider: printable text of 1 to MAX_BY characters."""
    return isinstance(by, str) and bool(by.strip()) and len(by) <= MAX_BY and by.isprintable()


def signed_decision(
    pending: Pending,
    decision: Decision,
    *,
    signer: Signer,
    by: str,
    reason: str = "",
    for_run: bool = False,
) -> dict[str, Any]:
    """``decision`` on ``pending``, signed with the decider's key over exactly the fields the
    run will record; with a nonce the run answers under."""
    if not is_name(by):
        raise GovrunError(f"--as must be a name of 1 to {MAX_BY} printable characters")
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise GovrunError(f"--reason must be one line of at most {MAX_REASON} characters")
    fields: dict[str, Any] = {
        "run_id": pending.run_id,
        "step": pending.step,
        "call_id": pending.call_id,
        "tool": pending.tool,
        "call_hash": pending.call_hash,
        "policy_hash": pending.policy_hash,
        "decision": decision,
        "via": "remote",
        "approver": by.strip(),
        "reason": reason.strip(),
        "decided_at": now_iso(),
    }
    return {
        "fields": fields,
        "for_run": for_run,
        "nonce": secrets.token_hex(8),
        "key_fingerprint": signer.fingerprint,
        "public_key": signer.public_key,
        "key_source": signer.source,
        "signature": signer.sign(approval_message(fields)),
    }


def send_decision(
    folder: Path,
    pending: Pending,
    decision: Decision,
    *,
    signer: Signer,
    by: str,
    reason: str = "",
    for_run: bool = False,
) -> str:
    """Sign ``decision`` on ``pending`` with the decider's key and queue it for the run;
    the nonce to look for in the run's registry entry."""
    data = signed_decision(pending, decision, signer=signer, by=by, reason=reason, for_run=for_run)
    inbox = folder / "decisions"
    if not inbox.is_dir():
        raise GovrunError(
            f"the run takes no decisions at {folder}: it has finished, or it does not wait "
            "for decisions from elsewhere (--approve wait)"
        )
    from govrun.runtime.ops.registry import write_atomic

    try:
        write_atomic(inbox / f"{time.time_ns():020d}-{data['nonce']}.json", orjson.dumps(data))
    except PermissionError:
        raise GovrunError(f"cannot write to {inbox}: permission denied") from None
    except OSError as exc:
        raise GovrunError(f"cannot write the decision to {inbox}: {exc.strerror}") from None
    return str(data["nonce"])


# --- the run's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One decision file as the run read it."""

    nonce: str | None
    fields: dict[str, Any]
    signed: dict[str, str]
    for_run: bool


class ApprovalChannel(Protocol):
    """How decisions reach a waiting run (a file spool here; a distributed backend's own)."""

    def publish(self, pending: Pending) -> None: ...

    def withdraw(self) -> None: ...

    def receive(self) -> list[Sent | str]:
        """Decisions that arrived since the last call (a string: a file that could not be
        read, with why)."""
        ...

    def answer(self, sent: Sent, outcome: str) -> None:
        """Tell the decider what became of their decision."""
        ...

    def close(self) -> None: ...


class FileApprovalChannel:
    """The spool folder next to the trace. Never raises into the run."""

    def __init__(self, folder: Path, *, registration: Any | None = None) -> None:
        self.folder = folder
        self.inbox = folder / "decisions"
        self.registration = registration
        self.broken: str | None = None
        self._stuck: set[str] = set()
        """Entries of the inbox already refused that could not be removed: said once."""
        try:
            self.inbox.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
            os.chmod(self.inbox, 0o700)
            for name in os.listdir(self.inbox):  # left by a run that is gone
                _discard(self.inbox / name)
        except OSError as exc:
            self.broken = exc.strerror or str(exc)

    def publish(self, pending: Pending) -> None:
        from govrun.runtime.ops.registry import write_atomic

        with contextlib.suppress(OSError):
            write_atomic(self.folder / "pending.json", orjson.dumps(pending.as_dict()))
        if self.registration is not None:
            self.registration.waiting(pending.as_dict())

    def withdraw(self) -> None:
        with contextlib.suppress(OSError):
            (self.folder / "pending.json").unlink()
        if self.registration is not None:
            self.registration.waiting(None)

    def receive(self) -> list[Sent | str]:
        if self.broken is not None:
            return []
        try:
            names = sorted(n for n in os.listdir(self.inbox) if not n.startswith("."))
        except OSError:
            return []
        found: list[Sent | str] = []
        for name in names:
            if name in self._stuck:
                continue
            path = self.inbox / name
            try:
                found.append(_read_sent(path))
            except FileNotFoundError:
                continue
            except ValueError as exc:
                found.append(f"{name}: {exc}")
            if not _discard(path):
                self._stuck.add(name)
        return found

    def answer(self, sent: Sent, outcome: str) -> None:
        if self.registration is not None and sent.nonce:
            self.registration.ack(sent.nonce, outcome, write=True)

    def close(self) -> None:
        for item in self.receive():
            if isinstance(item, Sent):
                self.answer(item, "refused: the run has finished")
        if self.registration is not None:
            self.registration.waiting(None)
        shutil.rmtree(self.folder, ignore_errors=True)


def _read_sent(path: Path) -> Sent:
    """The decision in one file of the inbox. Anything but a regular file — a folder, a
    FIFO that would block the run, a device, a symbolic link — is refused unread."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError("a symbolic link, not a decision file") from None
        raise ValueError(f"cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError("not a regular file")
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_DECISION_BYTES + 1)
    if len(raw) > MAX_DECISION_BYTES:
        raise ValueError(f"larger than {MAX_DECISION_BYTES} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError("not JSON") from None
    return sent_from(data)


def _discard(path: Path) -> bool:
    """Remove one inbox entry, whatever it is; whether it is gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return True
    except OSError:
        shutil.rmtree(path, ignore_errors=True)  # a folder (the inbox is the run's own)
        return not os.path.lexists(path)
    return True


SIGNATURE_KEYS = ("key_fingerprint", "public_key", "key_source", "signature")


def sent_from(data: Any) -> Sent:
    """A decision as :func:`signed_decision` makes it, from any channel (a spool file, a
    Temporal signal); :class:`ValueError` says why it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("fields"), dict):
        raise ValueError("not a govrun decision")
    signed = {k: data.get(k) for k in SIGNATURE_KEYS}
    if not all(isinstance(v, str) for v in signed.values()):
        raise ValueError("not signed")
    nonce = data.get("nonce")
    return Sent(
        nonce if isinstance(nonce, str) and 0 < len(nonce) <= 64 else None,
        dict(data["fields"]),
        {k: str(v) for k, v in signed.items()},
        data.get("for_run") is True,
    )


def check_sent(
    sent: Sent,
    pending: Pending,
    trusted: Mapping[str, str] | None,
    recordable: Callable[[str], bool] | None = None,
) -> str | None:
    """Why ``sent`` cannot decide ``pending`` (None: it can). Checked in the order a
    decider most needs to hear: the signature, the key, then what it decides; last, that
    the trace can keep what was signed (``recordable``, from the request)."""
    f = sent.fields
    if set(f) != set(APPROVAL_FIELDS):
        return "its fields are not an approval's"
    try:
        valid = verify_signature(
            sent.signed["public_key"], approval_message(f), sent.signed["signature"]
        )
        real = fingerprint(sent.signed["public_key"]) == sent.signed["key_fingerprint"]
    except (ValueError, TypeError):
        valid = real = False
    if not (valid and real):
        return "its signature does not verify (forged or altered)"
    if trusted is not None and sent.signed["key_fingerprint"] not in trusted:
        return (
            f"it is signed by {sent.signed['key_fingerprint']}, which is not in "
            "approvals.trusted_keys"
        )
    if f.get("via") != "remote" or f.get("decision") not in ("approve", "reject"):
        return "it is not an approve or reject from elsewhere"
    if f.get("run_id") != pending.run_id:
        return f"it is for run {f.get('run_id')!r}, not this one"
    if (f.get("step"), f.get("call_id")) != (pending.step, pending.call_id):
        return (
            f"it decides call {f.get('call_id')!r} at step {f.get('step')}, which is not "
            f"pending (the run waits on {pending.call_id!r} at step {pending.step})"
        )
    if f.get("call_hash") != pending.call_hash:
        return "its call hash is not the pending call's: it approves a different call"
    if f.get("tool") != pending.tool or f.get("policy_hash") != pending.policy_hash:
        return "its tool or policy hash is not the pending call's"
    by, reason = f.get("approver"), f.get("reason")
    if not is_name(by):
        return "its approver name is not a printable name"
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        return "its reason is not text"
    if recordable is not None and not (recordable(by) and recordable(reason)):
        return (
            "its reason or approver name quotes a secret value of this run: the trace "
            "never holds one, and redacting it would break the signature; send it again "
            "without it"
        )
    return None


# --- notifying -----------------------------------------------------------------------------


@dataclass
class Notifier:
    """Runs ``approvals.notify`` for one waiting call, in the background."""

    command: Sequence[str] | None
    url: str | None
    timeout_s: float
    results: list[dict[str, Any]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, pending: Pending) -> None:
        values = {
            "run": pending.run_id,
            "call": pending.call_id,
            "tool": pending.tool,
            "risk": pending.risk,
            "trace": pending.trace,
        }
        if self.command:
            argv = [_fill(word, values) for word in self.command]
            self._spawn(lambda: self._run(argv))
        if self.url:
            body = {
                **values,
                "step": pending.step,
                "call_hash": pending.call_hash,
                "rule": pending.rule,
                "since": pending.since,
                "deadline": pending.deadline,
                "arguments": pending.request.get("arguments"),
            }
            self._spawn(lambda: self._post(str(self.url), body))

    def _spawn(self, work: Callable[[], dict[str, Any]]) -> None:
        def target() -> None:
            try:
                outcome = work()
            except Exception as exc:  # a notifier never fails the run
                outcome = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
            self.results.append(outcome)

        thread = threading.Thread(target=target, name="govrun-notify", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, argv: list[str]) -> dict[str, Any]:
        shown = " ".join(argv)[:200]
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout_s,
                start_new_session=True,
            )
        except FileNotFoundError:
            return {"ok": False, "detail": f"notify command {shown!r}: no such program"}
        except subprocess.TimeoutExpired:
            return {
                "ok": False,
                "detail": f"notify command {shown!r}: no exit within {self.timeout_s:g}s (killed)",
            }
        tail = (done.stderr or done.stdout or b"").decode("utf-8", "replace").strip()
        tail = tail[-NOTIFY_OUTPUT:]
        if done.returncode != 0:
            return {
                "ok": False,
                "detail": f"notify command {shown!r} exited {done.returncode}"
                + (f": {tail}" if tail else ""),
            }
        return {"ok": True, "detail": f"notify command {shown!r} exited 0"}

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            reply = httpx.post(url, json=body, timeout=self.timeout_s)
        except httpx.TimeoutException:
            return {
                "ok": False,
                "detail": f"notify POST {url}: no answer within {self.timeout_s:g}s",
            }
        except httpx.HTTPError as exc:
            return {"ok": False, "detail": f"notify POST {url}: {type(exc).__name__}: {exc}"}
        ok = reply.status_code < 400
        return {"ok": ok, "detail": f"notify POST {url}: HTTP {reply.status_code}"}

    def notes(self) -> list[dict[str, Any]]:
        """What the notifier did so far, as ``approval_note`` payloads; one still running is
        said to be still running (the decision does not wait for it)."""
        running = sum(t.is_alive() for t in self._threads)
        notes = [{"kind": "notified", "ok": r["ok"], "detail": r["detail"]} for r in self.results]
        if running:
            notes.append(
                {
                    "kind": "notified",
                    "ok": False,
                    "detail": f"{running} notifier(s) still running when the call was decided",
                }
            )
        return notes


def refusal(sent: Sent | None, why: str) -> dict[str, Any]:
    """The ``approval_note`` of a decision from elsewhere that was not applied."""
    note: dict[str, Any] = {
        "kind": "refused",
        "detail": f"a decision from elsewhere was not applied: {why}",
    }
    if sent is not None:
        note["by"] = str(sent.fields.get("approver", ""))[:MAX_BY] or None
        note["key_fingerprint"] = sent.signed.get("key_fingerprint")
    return note


def timed_out(
    request: ApprovalRequest, on_timeout: Mapping[str, str], approver: str
) -> ApprovalDecision:
    """What an unanswered call decides once its ``timeout_s`` passed: ``on_timeout`` for its
    risk, recorded as a timeout (never as anyone's decision)."""
    effect = on_timeout.get(request.risk, "reject")
    return ApprovalDecision(
        decision="approve" if effect == "approve" else "reject",
        approver=f"timeout ({approver})",
        via="timeout",
        reason=f"no decision within {request.timeout_s:g}s (on_timeout for {request.risk} "
        f"risk: {effect})",
    )


def _fill(word: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        word = word.replace("{" + name + "}", value)
    return word


# --- the approver --------------------------------------------------------------------------


class WaitingApprover:
    """Waits for a decision from elsewhere (`--approve wait`); implements ``Approver``.

    ``prompt`` is the inline prompt when there is a terminal: it asks at the same time and
    polls :meth:`_elsewhere` between keystrokes (``decide_or``). ``on_timeout`` decides per
    risk level after ``timeout_s``. Connected to its channel by the run
    (:meth:`connect`), since the channel lives next to the trace.
    """

    def __init__(
        self,
        *,
        identity: str,
        on_timeout: Mapping[str, str],
        trusted_keys: Mapping[str, str] | None = None,
        notify: Notifier | None = None,
        prompt: Any | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        policy_hash: str | None = None,
    ) -> None:
        self.identity = identity
        self.on_timeout = dict(on_timeout)
        self.trusted = trusted_keys
        self.notify = notify
        self.prompt = prompt
        self._sleep = sleep
        self.channel: ApprovalChannel | None = None
        self.trace = ""
        self.policy_hash = policy_hash
        self.standing: dict[str, str] = {}
        """Tools approved for the rest of the run (`govrun approve --for-run`) -> by whom."""

    def connect(self, channel: ApprovalChannel, *, trace: str, policy_hash: str | None) -> None:
        self.channel = channel
        self.trace = trace
        self.policy_hash = policy_hash

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        if request.tool in self.standing:
            by = self.standing[request.tool]
            return ApprovalDecision(
                decision="approve",
                approver=by,
                via="rule",
                reason=f"standing approval for {request.tool} from {by} (govrun approve --for-run)",
            )
        if self.channel is None:
            raise GovrunError("waiting for approvals needs the run's approval channel")
        timeout = request.timeout_s
        deadline = time.monotonic() + timeout if timeout is not None else None
        pending = Pending.of(
            request,
            policy_hash=self.policy_hash,
            trace=self.trace,
            since=now_iso(),
            deadline=_iso_after(timeout) if timeout is not None else None,
        )
        notes: list[dict[str, Any]] = []
        self.channel.publish(pending)
        if self.notify is not None:
            self.notify.results.clear()
            self.notify.start(pending)
        try:
            decision = self._wait(pending, request, deadline, notes)
        finally:
            self.channel.withdraw()
        self._refuse_late(decision, notes)
        if self.notify is not None:
            notes = self.notify.notes() + notes
        return decision.model_copy(update={"notes": tuple(notes)})

    def _wait(
        self,
        pending: Pending,
        request: ApprovalRequest,
        deadline: float | None,
        notes: list[dict[str, Any]],
    ) -> ApprovalDecision:
        won: list[ApprovalDecision] = []

        def elsewhere() -> ApprovalDecision | None:
            found = self._elsewhere(pending, request, notes)
            if found is not None:
                won.append(found)
            return found

        if self.prompt is not None:
            return self.prompt.decide_or(request, elsewhere)
        while True:
            if elsewhere() is not None:
                return won[0]
            if deadline is not None and time.monotonic() >= deadline:
                return timed_out(request, self.on_timeout, self.identity)
            left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            self._sleep(max(left, 0.0))

    def _elsewhere(
        self, pending: Pending, request: ApprovalRequest, notes: list[dict[str, Any]]
    ) -> ApprovalDecision | None:
        """One look at the channel: the first valid decision, every other one refused."""
        assert self.channel is not None
        chosen: ApprovalDecision | None = None
        for item in self.channel.receive():
            if isinstance(item, str):
                notes.append({"kind": "refused", "detail": f"unreadable decision file {item}"})
                continue
            why = check_sent(item, pending, self.trusted, request.recordable)
            if why is None and chosen is not None:
                why = f"the call was already decided ({chosen.decision} by {chosen.approver})"
            if why is None:
                self.channel.answer(item, f"applied: {item.fields['decision']}")
                chosen = self._applied(item)
                continue
            notes.append(refusal(item, why))
            self.channel.answer(item, f"refused: {why}")
        return chosen

    def _refuse_late(self, decision: ApprovalDecision, notes: list[dict[str, Any]]) -> None:
        """Decisions that arrived for the call once it was decided (at the terminal, by a
        timeout, or by another decision): refused, and their senders told."""
        assert self.channel is not None
        how = f"{decision.decision} by {decision.approver}"
        for item in self.channel.receive():
            if isinstance(item, str):
                notes.append({"kind": "refused", "detail": f"unreadable decision file {item}"})
                continue
            why = f"the call was already decided ({how})"
            notes.append(refusal(item, why))
            self.channel.answer(item, f"refused: {why}")

    def _applied(self, sent: Sent) -> ApprovalDecision:
        f = sent.fields
        if sent.for_run and f["decision"] == "approve":
            self.standing[f["tool"]] = f["approver"]
        return applied(sent)


def applied(sent: Sent) -> ApprovalDecision:
    """A checked decision from elsewhere, as the run records it: with the decider's own
    signature over exactly these fields."""
    f = sent.fields
    return ApprovalDecision(
        decision=f["decision"],
        approver=f["approver"],
        via="remote",
        reason=f["reason"],
        signed={"decided_at": f["decided_at"], **sent.signed},
    )


def _iso_after(seconds: float) -> str:
    end = datetime.fromtimestamp(time.time() + seconds, UTC)
    return end.isoformat(timespec="microseconds").replace("+00:00", "Z")


def waiting_approver(manifest: Any, *, identity: str, prompt: Any | None = None) -> WaitingApprover:
    """The approver of `approvals.mode: wait` for ``manifest``: its timeouts, trusted keys
    and notifier; ``prompt`` (the inline prompt, when there is a terminal) asks too."""
    from govrun.runtime.trace.signing import load_trusted_keys

    approvals = manifest.approvals
    keys = approvals.trusted_keys
    notify = approvals.notify
    return WaitingApprover(
        identity=identity,
        on_timeout=approvals.on_timeout.model_dump(),
        trusted_keys=load_trusted_keys(manifest.resolve_path(keys)) if keys else None,
        notify=Notifier(command=notify.command, url=notify.url, timeout_s=notify.timeout_s)
        if notify is not None
        else None,
        prompt=prompt,
    )


def connect_approver(
    approver: Approver, channel_for: Callable[[], ApprovalChannel], **kwargs: Any
) -> ApprovalChannel | None:
    """Give a waiting approver (possibly behind standing rules) its channel; None when the
    run's approver waits for nobody."""
    target: Any = approver
    while target is not None and not isinstance(target, WaitingApprover):
        target = getattr(target, "fallback", None)
    if target is None:
        return None
    channel = channel_for()
    target.connect(channel, **kwargs)
    return channel
