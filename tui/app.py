"""The operator dashboard: `contentctl` with no command.

Six screens (Fleet, Tasks, Logs, Media, Provision, Sources), switched with 1-6. Data
comes from `control.api.ControlPlane` through async workers about once a second; tables are
updated in place (cursor and scroll kept). When the database goes away a banner says so and the
screens keep asking; when it is back, the banner goes.
"""

from __future__ import annotations

import asyncio
import gc

from tui import HEAD_HINT

try:
    import textual  # noqa: F401  (the head extra)
except ImportError:  # a worker's install: say what to install, in one line
    raise ImportError(HEAD_HINT, name="textual") from None
from collections.abc import Iterable
from typing import Any, ClassVar

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import DataTable

from tui.messages import DatabaseState, ProvisionHost
from tui.screens import (
    AuditScreen,
    FleetScreen,
    LogsScreen,
    MediaScreen,
    Plane,
    ProvisionScreen,
    SourcesScreen,
    TasksScreen,
)
from tui.screens.base import WRITES, Base
from tui.widgets.command_line import CommandLine


class Dashboard(App[int]):
    TITLE = "contentctl"
    CSS_PATH = "dashboard.tcss"
    MODES: ClassVar[dict[str, Any]] = {
        "fleet": FleetScreen,
        "tasks": TasksScreen,
        "logs": LogsScreen,
        "media": MediaScreen,
        "provision": ProvisionScreen,
        "sources": SourcesScreen,
        "audit": AuditScreen,
    }
    DEFAULT_MODE = "fleet"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1,f", "switch_mode('fleet')", "Fleet", show=False),
        Binding("2,t", "switch_mode('tasks')", "Tasks", show=False),
        Binding("3,l", "switch_mode('logs')", "Logs", show=False),
        Binding("4,m", "switch_mode('media')", "Media", show=False),
        Binding("5", "switch_mode('provision')", "Provision", show=False),
        Binding("6", "switch_mode('sources')", "Sources", show=False),
        Binding("7", "switch_mode('audit')", "Audit", show=False),
        Binding("question_mark", "toggle_help", "Help"),
        Binding("q", "quit", "Quit"),
        # as in k9s and vim: j/k down and up, g/G first and last, `:` a screen by name
        Binding("j", "vim('down')", "Down", show=False),
        Binding("k", "vim('up')", "Up", show=False),
        Binding("g", "vim('top')", "First", show=False),
        Binding("G", "vim('bottom')", "Last", show=False),
        # the screens' keys (1-7) are in the help (?); the footer keeps room for the screen's own
        Binding("colon", "command_line", "Screen", key_display=":"),
    ]
    VIM_ACTIONS: ClassVar[dict[str, str]] = {
        "down": "cursor_down",
        "up": "cursor_up",
        "top": "scroll_home",
        "bottom": "scroll_end",
    }

    def __init__(self, plane: Plane, *, refresh_s: float = 1.0) -> None:
        super().__init__()
        self.plane = plane
        self.refresh_s = refresh_s
        self.db_error: str | None = None
        gc.collect()  # nothing unreachable is frozen (one full pass, before the first paint)
        gc.freeze()  # the modules imported so far: see on_mount

    def on_mount(self) -> None:
        """What is here now (modules, Textual's and Rich's machinery, the stylesheet) lives as
        long as the app: out of the garbage collector's full passes. With it scanned, a full
        pass took 80-130 ms every ten-odd seconds (a refresh stalled, the first paint too):
        about 1% of a core while idle."""
        gc.freeze()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification as plain text: they carry host names, task errors and outcomes
        from workers, which are never markup (screens' `notify` passes markup=True here)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_vim(self, move: str) -> None:
        """j/k/g/G on whatever has the focus: a table's cursor, a log's scroll."""
        target = self.focused
        if target is None:
            return
        if isinstance(target, DataTable):
            name = {"top": "scroll_top", "bottom": "scroll_bottom"}.get(
                move, self.VIM_ACTIONS[move]
            )
        else:
            name = {"down": "scroll_down", "up": "scroll_up"}.get(move, self.VIM_ACTIONS[move])
        action = getattr(target, f"action_{name}", None)
        if action is not None:
            action()

    @property
    def read_only(self) -> bool:
        return bool(getattr(self.plane, "read_only", False))

    def screen_modes(self) -> list[str]:
        """The screens this session has: a read-only one has no Provision screen."""
        return [m for m in self.MODES if not (self.read_only and m == "provision")]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        hidden = (
            action == "switch_mode" and parameters[:1] and parameters[0] not in self.screen_modes()
        )
        return not hidden

    def action_command_line(self) -> None:
        modes = self.screen_modes()
        choices = [*modes, "quit"]

        def go(command: str | None) -> None:
            if command is None:
                return
            if command in ("q", "quit"):
                self.call_later(self.run_action, "quit")  # as `q` does
            elif command in modes:
                self.switch_mode(command)
            else:
                matches = [m for m in modes if m.startswith(command)]
                if len(matches) == 1:
                    self.switch_mode(matches[0])
                else:
                    self.notify(f"no screen {command!r}: {', '.join(choices)}", severity="warning")

        self.push_screen(CommandLine(choices), go)

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    @on(ProvisionHost)
    def provision_host(self, message: ProvisionHost) -> None:
        """The Fleet screen's `p`: the Provision screen, the host selected, its plan started."""
        self.switch_mode("provision")
        screen = self.screen
        if isinstance(screen, ProvisionScreen):

            def plan() -> None:  # once the screen is mounted (the first time it is new)
                screen.select(message.host)
                screen.start(message.host, dry_run=True)

            self.call_after_refresh(plan)

    @on(DatabaseState)
    def database_state(self, message: DatabaseState) -> None:
        """Screens report each call's outcome; every screen's banner follows it."""
        if message.error == self.db_error:
            return
        self.db_error = message.error
        for screen in self.screen_stack:
            if isinstance(screen, Base):
                screen.show_banner(message.error)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title in (
            ("fleet", "Fleet"),
            ("tasks", "Tasks"),
            ("logs", "Logs"),
            ("media", "Media"),
            ("provision", "Provision"),
            ("sources", "Sources"),
            ("audit", "Audit"),
        ):
            if mode not in self.screen_modes():
                continue
            yield SystemCommand(
                f"Go to {title}",
                f"the {title.lower()} screen",
                lambda m=mode: self.switch_mode(m),
            )
        actions = getattr(screen, "PALETTE", ())
        for action, title, help_text in actions:
            if self.read_only and action.split("(")[0] in WRITES:
                continue  # a read-only session has no such action
            yield SystemCommand(title, help_text, lambda a=action: screen.run_action(a))

    async def on_unmount(self) -> None:
        await self.plane.close()


async def run_dashboard(plane: Plane) -> int:
    app = Dashboard(plane)
    code = await app.run_async()
    return int(code or 0)


def main(plane: Plane) -> int:
    return asyncio.run(run_dashboard(plane))
