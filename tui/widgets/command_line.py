"""`:` in the dashboard, as in k9s: a one-line prompt for a screen's name (`:tasks`, `:logs`) or
`q`. What is typed is matched against the dashboard's screens, never run as anything else."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Input


class CommandLine(ModalScreen[str | None]):
    """Answers the command typed (stripped, lower case), or None when dismissed."""

    DEFAULT_CSS = """
    CommandLine { align: center bottom; background: $background 30%; }
    CommandLine > Input { width: 100%; margin: 0 0 1 0; border: tall $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, choices: list[str]) -> None:
        super().__init__()
        self.choices = choices

    def compose(self) -> ComposeResult:
        yield Input(placeholder=":" + " | ".join(self.choices), id="command")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip().lstrip(":").lower() or None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
