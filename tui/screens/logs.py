"""Logs: the agents' recent lines, live."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import (
    Input,
    RichLog,
    Static,
)

from tui import format as fmt
from tui.screens.base import LEVELS, Base
from tui.widgets.footer import Footer

HOSTS_EVERY = 10  # fetches between two reads of the host list (about ten seconds)


class LogsScreen(Base):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("h", "cycle_host", "Host"),
        Binding("v", "cycle_level", "Level"),
        Binding("space", "toggle_follow", "Follow"),
        Binding("slash", "filter", "Search"),
        Binding("escape", "clear_filter", "Clear search", show=False),
    ]
    KEEP = 3000

    def __init__(self) -> None:
        super().__init__()
        self.host: str | None = None
        self.hosts: list[str] = []  # the `h` cycle: grows as hosts appear
        self.fetches = 0
        self.level = "DEBUG"
        self.follow = True
        self.search = ""
        self.last_id = 0
        self.buffer: deque[dict[str, Any]] = deque(maxlen=self.KEEP)

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="filters", markup=False)
        yield Input(placeholder="search the log lines", id="filter")
        yield RichLog(id="log", wrap=False, markup=False, max_lines=self.KEEP)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#log", RichLog).focus()

    def load(self) -> None:
        self.fetch()

    @work(exclusive=True, group="logs")
    async def fetch(self) -> None:
        self.fetches += 1
        if not self.hosts or self.fetches % HOSTS_EVERY == 0:  # hosts that started since
            snap = await self.guarded(self.plane.fleet(), refresh=True)
            if snap is not None:
                self.learn_hosts(h.name for h in snap.hosts)
        rows = await self.guarded(
            self.plane.logs(self.host, after_id=self.last_id, limit=1000), refresh=True
        )
        if rows is None:
            return
        self.show_filters()
        if not rows:
            return
        self.learn_hosts(r["host"] for r in rows)  # a host that logs is a host to cycle to
        self.last_id = max(self.last_id, *(int(r["id"]) for r in rows))
        self.buffer.extend(rows)
        if self.follow:
            log = self.query_one("#log", RichLog)
            for r in rows:
                if self.wanted(r):
                    log.write(self.format_line(r))

    def learn_hosts(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.hosts:
                self.hosts.append(name)

    def show_filters(self) -> None:
        self.query_one("#filters", Static).update(
            f"host: {self.host or 'all'}   level ≥ {self.level}   search: {self.search or '-'}   "
            f"{'following' if self.follow else 'paused'}"
        )

    def wanted(self, r: dict[str, Any]) -> bool:
        level = str(r.get("level") or "INFO").upper()
        rank = LEVELS.index(level) if level in LEVELS else len(LEVELS)
        if rank < LEVELS.index(self.level):
            return False
        return not self.search or self.search.lower() in str(r.get("message", "")).lower()

    def format_line(self, r: dict[str, Any]) -> Text:
        level = str(r.get("level") or "")
        style = {"ERROR": "bold red", "WARNING": "yellow", "DEBUG": "dim"}.get(level, "")
        ts = r.get("ts")
        stamp = fmt.when(ts)[11:] if ts is not None else ""
        line = Text(f"{stamp} ", style="dim")
        line.append(f"{r.get('host', ''):<12} ", style="cyan")
        line.append(f"{level:<7} ", style=style)
        line.append(str(r.get("message", "")), style=style)
        return line

    def redraw(self) -> None:
        log = self.query_one("#log", RichLog)
        log.clear()
        for r in self.buffer:
            if self.wanted(r) and (self.host is None or r.get("host") == self.host):
                log.write(self.format_line(r))
        self.show_filters()

    def action_cycle_host(self) -> None:
        order: list[str | None] = [None, *self.hosts]
        self.host = order[(order.index(self.host) + 1) % len(order)] if self.host in order else None
        self.buffer.clear()
        self.last_id = 0
        self.query_one("#log", RichLog).clear()
        self.load()

    def action_cycle_level(self) -> None:
        self.level = LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)]
        self.redraw()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self.redraw()
        self.show_filters()

    def filter_cleared(self) -> None:
        self.search = ""
        self.redraw()

    @on(Input.Submitted, "#filter")
    def filter_done(self, event: Input.Submitted) -> None:
        self.search = event.value
        self.query_one("#log", RichLog).focus()
        self.redraw()
