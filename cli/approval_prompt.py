"""The inline approval prompt: the person at the terminal decides each ``ask`` call.

``TerminalApprover`` implements the ``Approver`` port. For each request it pauses the live
view, shows what the call is and what it would change, and reads one line from the
terminal: ``a`` approve once, ``r`` reject (with an optional reason the model is told),
``t`` approve this tool for the rest of the run, ``s`` stop the run.

The wait is a ``select`` on the terminal in short ticks, so a request with a timeout shows
a live countdown and decides its ``on_timeout`` effect when nobody answers; no thread is
started. Everything the model controls (arguments, rationale, file content) is shown as
plain text with control characters made visible, so a call cannot restyle, hide or
rewrite the panel that asks a person to approve it.
"""

from __future__ import annotations

import json
import math
import os
import select
import sys
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from govrun.cli.console import live_paused
from govrun.cli.terminal import prompt_mode
from govrun.runtime.errors import GovrunError
from govrun.runtime.ports import ApprovalDecision, ApprovalRequest

TimeoutEffect = Literal["approve", "reject"]
Via = Literal["prompt", "rule", "timeout"]

RISK_STYLE = {"low": "green", "medium": "yellow", "high": "red"}
CHOICES = {
    "a": "approve",
    "approve": "approve",
    "r": "reject",
    "reject": "reject",
    "t": "tool",
    "s": "stop",
    "stop": "stop",
}
"""What a typed line means. Anything else is asked again; an empty line is never a yes."""

PAST = {"approve": "approved", "reject": "rejected"}

TICK_S = 0.25
ELSEWHERE_TICK_S = 0.1
"""How often a prompt that races a decision from elsewhere looks for it."""
MAX_ARGUMENT_STRING = 800
MAX_ARGUMENT_LINES = 40
MAX_PREVIEW_LINES = 80
MAX_RATIONALE_CHARS = 600
MAX_RATIONALE_LINES = 8
MAX_REASON_CHARS = 500
NO_TERMINAL = "the inline approval prompt needs a terminal; use --approve or --approvals"

_SAVE_CURSOR, _RESTORE_CURSOR = "\x1b7", "\x1b8"
_UP_AND_CLEAR = "\x1b[1A\r\x1b[2K"


class _DecidedElsewhere(Exception):
    def __init__(self, decision: ApprovalDecision) -> None:
        super().__init__(decision.decision)
        self.decision = decision


class TerminalApprover:
    """Asks the person at the terminal; implements :class:`govrun.runtime.ports.Approver`.

    ``on_timeout`` maps a risk level to what happens when a request's ``timeout_s`` runs
    out (``reject`` when a level is missing). ``input_fd`` is the terminal to read from
    (default: standard input); it must be a terminal, or this raises ``GovrunError``.
    """

    def __init__(
        self,
        console: Console,
        *,
        identity: str,
        live: Live | None = None,
        on_timeout: Mapping[str, TimeoutEffect] | None = None,
        input_fd: int | None = None,
    ) -> None:
        self.console, self.identity, self.live = console, identity, live
        self.on_timeout: dict[str, TimeoutEffect] = dict(on_timeout or {})
        bad = {k: v for k, v in self.on_timeout.items() if v not in ("approve", "reject")}
        if bad:
            raise GovrunError(
                f"on_timeout must be approve or reject for each risk level; got {bad}"
            )
        self.fd = _terminal_fd(input_fd)
        self.standing: dict[str, int] = {}  # tool approved for the run -> step it was given at
        self._pending = b""
        self._elsewhere: Callable[[], ApprovalDecision | None] | None = None

    def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        granted_at = self.standing.get(request.tool)
        if granted_at is not None:
            self.console.print(
                Text.assemble(
                    ("✓ ", "green"),
                    (_visible(request.tool), "bold"),
                    f" approved at step {request.step}: standing approval from step {granted_at}",
                ),
                style="dim",
            )
            return self._decision(
                "approve",
                "rule",
                f"standing approval for {request.tool} given at step {granted_at} "
                f"by {self.identity}",
            )
        with live_paused(self.live):
            self.console.print(approval_panel(request))
            self.console.print(_legend(request.tool))
            return self._ask(request)

    # --- one prompt ------------------------------------------------------------------------

    def decide_or(
        self, request: ApprovalRequest, elsewhere: Callable[[], ApprovalDecision | None]
    ) -> ApprovalDecision:
        """:meth:`decide`, while a decision may also come from elsewhere (`govrun approve`):
        ``elsewhere`` is asked between keystrokes, and whichever decides first wins. A
        decision from elsewhere ends the prompt and says who made it."""
        self._elsewhere = elsewhere
        try:
            return self.decide(request)
        except _DecidedElsewhere as done:
            d = done.decision
            word = PAST.get(d.decision, d.decision)
            self.console.print()
            self._said(
                f"decided elsewhere: {word} by {d.approver}"
                + (f": {d.reason}" if d.reason else ""),
                "green" if d.decision == "approve" else "yellow",
            )
            return d
        finally:
            self._elsewhere = None

    def _ask(self, request: ApprovalRequest) -> ApprovalDecision:
        effect = self.on_timeout.get(request.risk, "reject")
        deadline = _deadline(request.timeout_s)
        self._pending = b""
        if self._elsewhere is not None:
            self.console.print(
                Text(
                    f"also waiting for: govrun approve {request.run_id} {request.call_id} "
                    "(or reject) from elsewhere",
                    style="dim",
                )
            )
        try:
            with prompt_mode(self.fd):
                choice = self._choose(deadline, f"auto-{effect} in {{}}s")
                if choice is None:
                    return self._timed_out(request, effect)
                if choice == "reject":
                    return self._rejected(request)
        except KeyboardInterrupt:
            self.console.print()
            self._said("■ interrupted: stopping the run", "bold red")
            return self._decision("stop", "prompt", "interrupted at the approval prompt")
        except EOFError:
            self.console.print()
            self._said("✗ end of input: rejected", "red")
            return self._decision(
                "reject", "prompt", "end of input at the approval prompt: nobody answered"
            )
        if choice == "stop":
            self._said("■ stopping the run", "bold red")
            return self._decision("stop", "prompt", "stop chosen at the approval prompt")
        if choice == "tool":
            self.standing[request.tool] = request.step
            self._said(f"✓ approved {request.tool} for the rest of the run", "green")
            return self._decision(
                "approve", "prompt", f"approved {request.tool} for the rest of the run"
            )
        self._said("✓ approved once", "green")
        return self._decision("approve", "prompt", "approved once")

    def _choose(self, deadline: float | None, countdown: str) -> str | None:
        """The choice typed, or None when the deadline passed first."""
        while True:
            line = self._read_line("choice [a/r/t/s]: ", deadline, countdown)
            if line is None:
                return None
            typed = line.strip().lower()
            if typed in CHOICES:
                return CHOICES[typed]
            shown = _visible(typed[:40]) or "an empty line"
            self.console.print(
                Text.assemble((shown, "bold"), " is not a choice: type a, r, t or s"),
                style="red",
            )

    def _rejected(self, request: ApprovalRequest) -> ApprovalDecision:
        """Ask for an optional reason. The rejection stands whatever happens here: a
        timeout or an empty line rejects without a reason."""
        line = self._read_line(
            "reason (optional; the model is told): ",
            _deadline(request.timeout_s),
            "rejecting without a reason in {}s",
        )
        reason = _plain(line or "").strip()[:MAX_REASON_CHARS]
        self._said("✗ rejected" + (f": {reason}" if reason else ""), "red")
        return self._decision("reject", "prompt", reason)

    def _timed_out(self, request: ApprovalRequest, effect: TimeoutEffect) -> ApprovalDecision:
        waited = f"{request.timeout_s:g}s"
        self._said(
            f"⏱ no answer within {waited}: auto-{PAST[effect]} ({request.risk} risk)",
            "green" if effect == "approve" else "yellow",
        )
        return self._decision(
            effect,
            "timeout",
            f"no answer within {waited} (on_timeout for {request.risk} risk: {effect})",
        )

    def _decision(
        self, decision: Literal["approve", "reject", "stop"], via: Via, reason: str
    ) -> ApprovalDecision:
        # Nobody decided a timeout: the record must not read as this person's approval.
        approver = f"timeout ({self.identity})" if via == "timeout" else self.identity
        return ApprovalDecision(decision=decision, approver=approver, via=via, reason=reason)

    def _said(self, text: str, style: str) -> None:
        self.console.print(Text(_visible(text), style=style))

    # --- reading the terminal --------------------------------------------------------------

    def _read_line(self, prompt: str, deadline: float | None, countdown: str) -> str | None:
        """One line typed at the terminal, or None when ``deadline`` passes first.

        With a deadline, a countdown line sits just above the prompt and is redrawn in place
        (cursor saved and restored around it, so what the person is typing is untouched)
        whenever the whole seconds left change. Raises ``EOFError`` at end of input.
        """
        shown: int | None = None
        if deadline is not None:
            shown = _seconds_left(deadline)
            self.console.print(_countdown(countdown, shown))
        self.console.print(Text(prompt, style="bold"), end="")
        while True:
            if b"\n" in self._pending:
                line, _, self._pending = self._pending.partition(b"\n")
                return line.decode("utf-8", "replace")
            wait = TICK_S
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.console.print()  # leave the prompt line
                    return None
                if _seconds_left(deadline) != shown:
                    shown = _seconds_left(deadline)
                    self._redraw_countdown(_countdown(countdown, shown))
                wait = min(TICK_S, left)
            if self._elsewhere is not None:
                decided = self._elsewhere()
                if decided is not None:
                    raise _DecidedElsewhere(decided)
                wait = min(wait, ELSEWHERE_TICK_S)
            ready, _, _ = select.select([self.fd], [], [], wait)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the terminal went away (EIO after a hangup)
                    chunk = b""
                if not chunk:
                    raise EOFError
                self._pending += chunk

    def _redraw_countdown(self, text: Text) -> None:
        if not self.console.is_terminal:
            return  # no cursor control in a log file: the first countdown line stays
        with self.console.capture() as captured:
            self.console.print(text, end="")
        out = self.console.file
        out.write(_SAVE_CURSOR + _UP_AND_CLEAR + captured.get() + _RESTORE_CURSOR)
        out.flush()


# --- the panel -------------------------------------------------------------------------------


def approval_panel(request: ApprovalRequest) -> Panel:
    """What the person is asked to decide: tool and risk, the rule that asked and why, the
    model's rationale, the exact arguments and, when known, what the call would change."""
    risk_style = RISK_STYLE.get(request.risk, "magenta")
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold cyan", no_wrap=True)
    head.add_column()
    head.add_row(
        "tool",
        Text.assemble(
            (_visible(request.tool), "bold"),
            "  risk ",
            (_visible(request.risk), f"bold {risk_style}"),
        ),
    )
    head.add_row(
        "rule",
        Text.assemble(
            (_visible(request.rule or "policy default"), "bold"),
            " — ",
            _visible(request.reason),
        ),
    )
    if request.rationale and request.rationale.strip():
        head.add_row("rationale", Text(_rationale(request.rationale), style="italic"))
    parts: list[RenderableType] = [head, Text("the call as it runs", style="bold cyan")]
    parts += _clipped_syntax(_arguments_json(request.arguments), "json", MAX_ARGUMENT_LINES)
    if request.raw_arguments is not None:
        parts.append(Text("as the model sent it", style="bold cyan"))
        parts += _clipped_syntax(_arguments_json(request.raw_arguments), "json", MAX_ARGUMENT_LINES)
    if request.preview:
        parts.append(Text("change", style="bold cyan"))
        parts += _clipped_syntax(_visible(request.preview), "diff", MAX_PREVIEW_LINES)
    return Panel(
        Group(*parts),
        title=f"Approval needed · step {request.step}",
        title_align="left",
        subtitle=f"call {request.call_hash[:12]}",
        subtitle_align="right",
        border_style=risk_style,
    )


def _legend(tool: str) -> Text:
    return Text.assemble(
        ("a", "bold"),
        " approve once · ",
        ("r", "bold"),
        " reject · ",
        ("t", "bold"),
        f" approve every {_visible(tool)} call for the rest of the run · ",
        ("s", "bold"),
        " stop the run",
    )


def _countdown(template: str, seconds: int) -> Text:
    return Text("⏱ " + template.format(seconds), style="bold yellow")


def _clipped_syntax(code: str, lexer: str, max_lines: int) -> list[RenderableType]:
    lines = code.rstrip("\n").split("\n")
    shown = [
        Syntax(
            "\n".join(lines[:max_lines]),
            lexer,
            theme="ansi_dark",
            word_wrap=True,
            background_color="default",
        )
    ]
    if len(lines) > max_lines:
        shown.append(Text(f"… {len(lines) - max_lines:,} more lines not shown", style="dim"))
    return shown


def _arguments_json(arguments: Mapping[str, Any]) -> str:
    text = json.dumps(_clip_strings(arguments), indent=2, ensure_ascii=False, default=str)
    return _visible(text, json_escapes=True)


def _clip_strings(value: Any) -> Any:
    """Long string values cut (saying how much), so one huge argument cannot push the rest
    of the call off the screen; the structure stays valid JSON."""
    if isinstance(value, str) and len(value) > MAX_ARGUMENT_STRING:
        rest = len(value) - MAX_ARGUMENT_STRING
        return value[:MAX_ARGUMENT_STRING] + f"… [{rest:,} more characters]"
    if isinstance(value, Mapping):
        return {k: _clip_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clip_strings(v) for v in value]
    return value


def _rationale(text: str) -> str:
    text = text.strip()
    lines = text.split("\n")
    clipped = "\n".join(lines[:MAX_RATIONALE_LINES])[:MAX_RATIONALE_CHARS]
    return _visible(clipped) + ("…" if clipped != text else "")


def _visible(text: str, *, json_escapes: bool = False) -> str:
    """``text`` with every control, format and separator character (ESC, C1, bidi
    overrides, zero-width characters, U+2028 …) shown as an escape instead of acting on
    the terminal or hiding what is written. Newlines and tabs stay."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(ch)
        elif json_escapes or ord(ch) > 0xFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\x{ord(ch):02x}")
    return "".join(out)


def _plain(text: str) -> str:
    """Typed text without control characters (a reason goes into the trace and to the model)."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc")


# --- the terminal ----------------------------------------------------------------------------


def _terminal_fd(input_fd: int | None) -> int:
    if input_fd is None:
        try:
            input_fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):  # no stdin, or one replaced by a test
            raise GovrunError(NO_TERMINAL) from None
    if not os.isatty(input_fd):
        raise GovrunError(NO_TERMINAL)
    return input_fd


def _deadline(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else time.monotonic() + timeout_s


def _seconds_left(deadline: float) -> int:
    return max(0, math.ceil(deadline - time.monotonic()))
