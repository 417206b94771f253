"""Theme-aware Rich styles for widgets that render with the Line API.

Line-API widgets build Rich segments themselves, so they cannot put ``$success`` in a
string. Each declares the ``ink--*`` component classes below; their colours come from
Textual's design tokens in CSS, so they follow the theme (light or dark) and are re-read
whenever styles change.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from textual.widget import Widget

INKS = ("ok", "error", "warning", "accent", "muted", "heading", "selected", "key")
"""Meanings, not colours: what a piece of text says about the run."""

COMPONENT_CLASSES = {f"ink--{name}" for name in INKS}

_RULES = {
    "ok": "color: $text-success;",
    "error": "color: $text-error;",
    "warning": "color: $text-warning;",
    "accent": "color: $text-accent;",
    "muted": "color: $text-muted;",
    "heading": "color: $text-primary; text-style: bold;",
    "selected": "background: $block-cursor-background; color: $block-cursor-foreground; "
    "text-style: bold;",
    "key": "color: $text-secondary;",
}


def ink_css(widget: str) -> str:
    """The ``ink--*`` rules for one widget type, for its ``DEFAULT_CSS``."""
    return "\n".join(f"{widget} > .ink--{name} {{ {rule} }}" for name, rule in _RULES.items())


@dataclass(frozen=True, slots=True)
class Palette:
    """Rich styles for one widget under the current theme."""

    base: Style
    ok: Style
    error: Style
    warning: Style
    accent: Style
    muted: Style
    heading: Style
    selected: Style
    key: Style

    @classmethod
    def of(cls, widget: Widget) -> Palette:
        inks = {name: widget.get_component_rich_style(f"ink--{name}") for name in INKS}
        return cls(base=widget.rich_style, **inks)

    def ink(self, name: str) -> Style:
        """A style by meaning (``ok``, ``error``…); the base style for unknown names."""
        style = getattr(self, name, None)
        return style if isinstance(style, Style) else self.base


PLAIN = Palette(*(Style() for _ in range(len(INKS) + 1)))
"""No colours at all: for rendering outside a running app (tests, captures)."""
