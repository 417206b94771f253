"""The one-line input under the panes, for ``:`` (jump to a step) and ``/`` (search)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class PromptBar(Input):
    """Hidden until asked; answers with :class:`Answered` and hides again."""

    DEFAULT_CSS = """
    PromptBar { display: none; height: 1; border: none; padding: 0 1; }
    PromptBar.-open { display: block; }
    """
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "close", "cancel", show=False)]

    class Answered(Message):
        def __init__(self, mode: str, value: str) -> None:
            super().__init__()
            self.mode = mode
            self.value = value

    class Closed(Message):
        """The prompt was answered or dismissed: focus can go back where it was."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self.mode = ""

    def ask(self, mode: str, placeholder: str, value: str = "") -> None:
        self.mode = mode
        self.placeholder = placeholder
        self.value = value
        self.add_class("-open")
        self.focus()

    def action_close(self) -> None:
        if self.has_class("-open"):
            self.remove_class("-open")
            self.post_message(self.Closed())

    @on(Input.Submitted)
    def _answered(self, event: Input.Submitted) -> None:
        event.stop()
        value = self.value.strip()
        self.action_close()
        if value:
            self.post_message(self.Answered(self.mode, value))

    def on_blur(self) -> None:
        self.action_close()
