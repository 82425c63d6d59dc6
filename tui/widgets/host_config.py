"""Editing a host's enabled task types and concurrency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Input,
    Label,
    SelectionList,
)

from control.core.tasktypes import known


class HostConfig(ModalScreen[tuple[list[str], int] | None]):
    """A host's enabled task types and concurrency: space toggles a type, ctrl+s saves."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, host: str, enabled: Sequence[str], max_concurrent: int | None) -> None:
        super().__init__()
        self.host = host
        self.enabled = set(enabled)
        self.max_concurrent = max_concurrent or 1

    def compose(self) -> ComposeResult:

        with Vertical(id="confirm"):
            yield Label(
                f"{self.host}: task types (space toggles) and concurrency",
                id="question",
                markup=False,
            )
            yield SelectionList[str](*((t, t, t in self.enabled) for t in known()), id="types")
            yield Input(str(self.max_concurrent), type="integer", id="concurrency")
            with Horizontal(id="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def action_save(self) -> None:
        types = list(self.query_one("#types", SelectionList).selected)
        try:
            conc = int(self.query_one("#concurrency", Input).value)
        except ValueError:
            conc = 0
        if conc < 1:
            self.notify("max concurrent tasks must be a whole number, at least 1", severity="error")
            return
        self.dismiss((types, conc))

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)
