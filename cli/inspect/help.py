"""``?``: every key binding (from the app's own bindings) and the meaning of each icon."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Static

from govrun.cli.inspect.icons import INK_TOKENS, Icon


class HelpScreen(ModalScreen[None]):
    """A scrollable sheet; any of escape, ? or q closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; max-width: 95%; height: auto; max-height: 95%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,question_mark,q", "dismiss(None)", "close help")
    ]

    def __init__(self, keys: list[tuple[str, str]], legends: list[tuple[str, list[Icon]]]) -> None:
        super().__init__()
        self.keys = keys
        self.legends = legends

    def compose(self) -> ComposeResult:
        lines = ["[b $text-primary]Keys[/]"]
        width = max((len(k) for k, _ in self.keys), default=0)
        lines += [
            f"  [b $text-secondary]{escape(k.ljust(width))}[/]  {escape(d)}" for k, d in self.keys
        ]
        for heading, icons in self.legends:
            lines += ["", f"[b $text-primary]{escape(heading)}[/]"]
            for icon in icons:
                token = INK_TOKENS.get(icon.ink, "$text")
                lines.append(f"  [b {token}]{escape(icon.glyph)}[/]  {escape(icon.meaning)}")
        lines += [
            "",
            "[$text-muted]ctrl+p opens the command palette (themes: light, dark…). "
            "Esc, ? or q closes this help.[/]",
        ]
        with VerticalScroll():
            yield Static("\n".join(lines), id="help-text")


def describe_keys(bindings: list[Binding], display: dict[str, str]) -> list[tuple[str, str]]:
    """``(keys, what they do)`` for every binding with a description; ``display`` maps a
    key name to how it is shown (the app's ``get_key_display``)."""
    rows: list[tuple[str, str]] = []
    for b in bindings:
        what = b.tooltip or b.description
        if not what:
            continue
        keys = " ".join(display.get(k.strip(), k.strip()) for k in b.key.split(","))
        rows.append((keys, what))
    return rows
