"""Audit: the latest operator actions, from the CLI and the dashboard alike: when, who, through
what, which action, on which hosts or tasks, and how it ended."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable

from tui import format as fmt
from tui.screens.base import Base
from tui.widgets.footer import Footer
from tui.widgets.live_table import sync_rows


class AuditScreen(Base):
    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield DataTable(id="audit", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#audit", DataTable)
        for key in ("when", "who", "via", "action", "on", "outcome"):
            table.add_column(key, key=key)
        table.focus()

    def load(self) -> None:
        self.fetch()

    @work(exclusive=True, group="audit")
    async def fetch(self) -> None:
        rows: list[dict[str, Any]] | None = await self.guarded(self.plane.audit(), refresh=True)
        if rows is None:
            return
        sync_rows(
            self.query_one("#audit", DataTable),
            {
                str(r["id"]): [
                    fmt.when(r["at"]),
                    r["actor"],
                    r["via"],
                    r["action"],
                    " ".join(map(str, r["targets"]))[:40],
                    str(r["outcome"])[:60],
                ]
                for r in rows
            },
        )
