"""Messages the dashboard's screens send up to the app (attributes down, messages up)."""

from __future__ import annotations

from textual.message import Message

from control.core.readmodels import FleetSnapshot


class DatabaseState(Message):
    """A screen's call to the control plane ended: `error` is None when the database
    answered, else what went wrong (the app shows or hides the banner on every screen)."""

    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error


class FleetRead(Message):
    """The fleet screen's reader has a new snapshot (its worker reads; the screen draws)."""

    def __init__(self, snapshot: FleetSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class ProvisionHost(Message):
    """Show the Provision screen with `host` selected and its plan (a dry run) under way."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host
