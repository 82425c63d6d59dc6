"""What every dashboard screen shares: the control plane it reads, the header, the database
banner, the footer and a refresh loop that runs while the screen shows."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, Protocol, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import (
    Header,
    Input,
    Static,
)

from control.core import tasktypes
from control.core.readmodels import FleetSnapshot, MediaView
from control.head.api import TaskQuery, Unavailable
from tui.messages import DatabaseState
from tui.widgets.confirm import Confirm

STATES = tasktypes.STATES  # one definition: control.core.tasktypes
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


# The actions that change something (drain, restart, cancel, retry, provision, configure...):
# a read-only session has none of them, in the footer, the help, the palette or the keys.
WRITES = frozenset(
    {
        "host",
        "edit",
        "ssh",
        "retry",
        "cancel",
        "priority",
        "retry_all",
        "cancel_all",
        "plan",
        "apply",
        "poll",
        "toggle_pause",
    }
)


class Plane(Protocol):
    """What the dashboard needs from `control.api.ControlPlane`."""

    label: str
    code_hash: str | None  # the head's code: hosts reporting another one run stale code

    async def fleet(self) -> FleetSnapshot: ...
    async def tasks(self, query: TaskQuery) -> list[dict[str, Any]]: ...
    async def task(self, task_id: int) -> dict[str, Any] | None: ...
    async def matching_ids(self, query: TaskQuery, states: tuple[str, ...]) -> list[int]: ...
    async def logs(
        self, host: str | None, after_id: int = 0, limit: int = 500
    ) -> list[dict[str, Any]]: ...
    async def media(self, limit: int = 200, source_id: int | None = None) -> list[MediaView]: ...
    async def sources(self) -> list[dict[str, Any]]: ...
    async def audit(self, limit: int = 50) -> list[dict[str, Any]]: ...
    async def poll_source(self, name: str) -> int: ...
    async def pause_source(self, name: str, paused: bool) -> None: ...
    async def transcript_head(self, item: MediaView, lines: int = 8) -> list[str]: ...
    async def retry(self, ids: list[int]) -> list[int]: ...
    async def cancel(self, ids: list[int]) -> list[dict[str, Any]]: ...
    async def raise_priority(self, task_id: int, by: int = 10) -> int | None: ...
    async def command(self, host: str, command: str, args: dict[str, Any] | None = None) -> Any: ...
    async def configure_host(
        self, host: str, enabled_tasks: list[str], max_concurrent_tasks: int
    ) -> str: ...
    def ssh_hosts(self) -> list[dict[str, Any]]: ...
    async def start_agent(self, host: str) -> str: ...
    async def provision(
        self, host: str, *, dry_run: bool, on_step: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]: ...
    async def close(self) -> None: ...


class HasPlane(Protocol):
    """The app the screens run in (tui.app.Dashboard) holds the control plane."""

    plane: Plane
    db_error: str | None
    refresh_s: float
    read_only: bool  # the plane's: a session without actions


class Base(Screen[None]):
    """Header, database banner, footer, and a refresh loop that runs while the screen shows."""

    PALETTE: ClassVar[Sequence[tuple[str, str, str]]] = ()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A read-only session's screens have no action that changes something: hidden, not
        merely refused (False hides a binding from the footer and the keys)."""
        return not (action in WRITES and cast("HasPlane", self.app).read_only)

    def compose_top(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner", markup=False)

    def on_mount(self) -> None:
        app = cast("HasPlane", self.app)
        self.show_banner(app.db_error)
        self.refresh_data()
        self.set_interval(app.refresh_s, self.refresh_data)

    @property
    def plane(self) -> Plane:
        return cast("HasPlane", self.app).plane

    def show_banner(self, error: str | None) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(f"⚠ {error}: retrying every second" if error else "")
        banner.display = bool(error)

    in_flight = 0  # control-plane calls under way

    def refresh_data(self) -> None:
        """The timer's tick: a new refresh, unless the last one is still under way (a slow or
        remote database: starting over every tick would cancel it and never paint)."""
        if self.is_current and not self.in_flight:
            self.load()

    def load(self) -> None:  # overridden: starts the screen's refresh worker
        pass

    async def guarded(self, call: Coroutine[Any, Any, Any], *, refresh: bool = False) -> Any:
        """Run a control-plane call; report the database's state to the app. `refresh`: the
        call is the screen's periodic read (timer ticks wait for it; actions do not count)."""

        error: str | None = None
        result: Any = None
        self.in_flight += refresh
        try:
            result = await call
        except Unavailable as exc:
            error = str(exc)
        finally:
            self.in_flight -= refresh
        if not self.is_attached or not self.app.is_running:
            return None  # the screen went away meanwhile (the app is closing)
        self.post_message(DatabaseState(error))  # the app keeps every screen's banner in step
        return result

    def action_filter(self) -> None:
        """`/`: show the screen's filter box and type into it."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        """escape: empty and hide the filter box, then let the screen show everything again."""
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter_cleared()

    def filter_cleared(self) -> None:  # overridden by screens with a filter
        pass

    def confirm_then(self, question: str, act: Callable[[], object]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                act()

        self.app.push_screen(Confirm(question), answered)
