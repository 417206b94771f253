"""The filter menu: keep only the steps that hold an event type or a failure class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from govrun.runtime.views.timeline import TYPES


@dataclass(frozen=True, slots=True)
class StepFilter:
    kind: Literal["type", "failure", "clear"]
    value: str = ""

    @property
    def label(self) -> str:
        if self.kind == "failure":
            return "any failure" if self.value == "*" else f"failure {self.value}"
        return self.value


class FilterScreen(ModalScreen[StepFilter | None]):
    """Pick what the timeline keeps; escape leaves the filter as it is."""

    DEFAULT_CSS = """
    FilterScreen { align: center middle; }
    FilterScreen > Vertical {
        width: 60; max-width: 90%; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    FilterScreen OptionList { height: auto; max-height: 20; border: none; }
    """
    BINDINGS: ClassVar[list[Binding]] = [Binding("escape,q", "dismiss(None)", "cancel")]

    def __init__(self, failure_classes: list[str], *, active: StepFilter | None) -> None:
        super().__init__()
        self.choices: list[StepFilter] = []
        if active is not None:
            self.choices.append(StepFilter("clear"))
        self.choices.append(StepFilter("failure", "*"))
        self.choices += [StepFilter("failure", name) for name in failure_classes]
        self.choices += [StepFilter("type", name) for name in TYPES if name != "run_started"]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Keep only the steps with…[/b]  (enter picks, esc cancels)")
            yield OptionList(*(Option(self._words(c)) for c in self.choices), id="choices")

    @staticmethod
    def _words(choice: StepFilter) -> str:
        if choice.kind == "clear":
            return "[$text-warning]clear the filter: show every step[/]"
        if choice.kind == "failure":
            return f"[$text-error]{choice.label}[/]"
        return f"event {choice.value}"

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[event.option_index])
