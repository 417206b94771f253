"""`--help` as it is written: whole paragraphs, and values named the way the README names them.

typer renders help in rich markup mode, where the hard wraps of a docstring stay as line
breaks in the middle of sentences, and it labels each value with its Python type (`<bool>`
on a flag, `<path>` beside `AGENT.yaml`). The root command, :class:`HelpGroup`, repairs the
tree typer builds under it once: every command becomes a :class:`HelpCommand` (or
:class:`HelpGroup`) whose help paragraphs are unwrapped, and whose parameters — the help
and completion options included — show a flag without a type, an option with its metavar
(else its name in capitals), choices as ``[a|b]``, an argument by its name alone.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

_ITEM = re.compile(r"\s*([-*•]|\d+[.)])\s")
"""A line that starts a list item keeps its own line."""


def unwrap(text: str | None) -> str | None:
    """``text`` with each paragraph on one line: blank lines separate paragraphs, list items
    and ``\\b`` blocks (click's "do not rewrap") keep their lines."""
    if not text:
        return text
    return "\n\n".join(_paragraph(p) for p in inspect.cleandoc(text).split("\n\n"))


def _paragraph(text: str) -> str:
    if text.startswith("\b"):
        return text
    lines: list[str] = []
    for line in text.splitlines():
        if lines and not _ITEM.match(line):
            lines[-1] = f"{lines[-1]} {line.strip()}"
        else:
            lines.append(line.rstrip())
    return "\n".join(lines)


class PlainOption(TyperOption):
    """An option shown as people write it: ``--json``, ``--output TRACE.jsonl``,
    ``--approve [prompt|auto|deny]``."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        if self.metavar is not None:
            return self.metavar
        label = super().display_type_rich(ctx)
        if label and label.startswith("<") and label.rstrip(".").endswith(">"):
            inner = label.rstrip(".")[1:-1]
            label = f"[{inner}]" if "|" in inner else self._named()
        return label

    def _named(self) -> str:
        """The long option's name in capitals: ``--as`` is AS, ``--live-from`` LIVE_FROM."""
        longest = max(self.opts, key=len, default=self.name or "value")
        return longest.lstrip("-").replace("-", "_").upper()


class PlainArgument(TyperArgument):
    """An argument shown by its name (``AGENT.yaml``, ``TRACE.jsonl``, else its name in
    capitals), never its type; choices as ``[a|b]``."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "value").upper()

    def display_type_rich(self, ctx: Any) -> str | None:
        label = super().display_type_rich(ctx)
        inner = label[1:-1] if label and label.startswith("<") and label.endswith(">") else ""
        return f"[{inner}]" if "|" in inner else None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        many = "..." if self.nargs != 1 and not name.endswith("...") else ""
        return (name if self.required else f"[{name}]") + many


_PLAIN: dict[type, type] = {TyperOption: PlainOption, TyperArgument: PlainArgument}


def _plain(params: list[Any]) -> list[Any]:
    """The same parameter objects, each of typer's own classes made its plain subclass
    (they add no state: only how the parameter is shown changes)."""
    for param in params:
        plain = _PLAIN.get(type(param))
        if plain is not None:
            param.__class__ = plain
    return params


class HelpCommand(TyperCommand):
    """A command whose help reads as written (see the module docstring)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


class HelpGroup(TyperGroup):
    """The root command: repairs every command under it as typer builds the tree."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy(self)

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


_COMMANDS: dict[type, type] = {TyperCommand: HelpCommand, TyperGroup: HelpGroup}


def _tidy(command: Any) -> None:
    command.help = unwrap(command.help)
    command.short_help = unwrap(command.short_help)
    for sub in getattr(command, "commands", {}).values():
        kind = _COMMANDS.get(type(sub))
        if kind is not None:
            sub.__class__ = kind
        _tidy(sub)
