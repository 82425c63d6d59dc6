"""Sources: every feed the fleet polls, its schedule, last and next poll, items found, the
last error; `n` polls the selected one now, `space` pauses or resumes it."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from tui import format as fmt
from tui.screens.base import Base
from tui.widgets.footer import Footer
from tui.widgets.live_table import selected_key, sync_rows


class SourcesScreen(Base):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "poll", "Poll now"),
        Binding("space", "toggle_pause", "Pause/resume"),
    ]
    PALETTE = (
        ("poll", "Poll source", "poll the selected source now"),
        ("toggle_pause", "Pause or resume source", "stop or restart its scheduled polls"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield DataTable(id="sources", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#sources", DataTable)
        for key in ("id", "name", "state", "items", "last poll", "next poll", "last error"):
            table.add_column(key, key=key)
        table.focus()

    def load(self) -> None:
        self.fetch()

    @work(exclusive=True, group="sources")
    async def fetch(self) -> None:
        rows = await self.guarded(self.plane.sources(), refresh=True)
        if rows is None:
            return
        self.rows = {str(r["id"]): r for r in rows}
        sync_rows(
            self.query_one("#sources", DataTable),
            {
                str(r["id"]): [
                    str(r["id"]),
                    r["name"],
                    Text("paused", style="dim") if r["paused"] else Text("active", style="green"),
                    str(r["items_found"]),
                    fmt.when(r["last_polled_at"]),
                    "-" if r["paused"] else fmt.when(r["next_run_at"]),
                    (r["last_error"] or "")[:60],
                ]
                for r in rows
            },
        )

    def selected(self) -> dict[str, Any] | None:
        return self.rows.get(selected_key(self.query_one("#sources", DataTable)) or "")

    @work(group="source-actions")
    async def action_poll(self) -> None:
        src = self.selected()
        if src is None:
            self.notify("no source selected", severity="warning")
            return
        task = await self.guarded(self.plane.poll_source(src["name"]))
        if task is not None:
            self.notify(f"{src['name']}: poll task {task} enqueued")

    @work(group="source-actions")
    async def action_toggle_pause(self) -> None:
        src = self.selected()
        if src is None:
            return
        pause = not src["paused"]
        await self.guarded(self.plane.pause_source(src["name"], pause))
        self.notify(f"{src['name']}: {'paused' if pause else 'resumed'}")
        self.load()
