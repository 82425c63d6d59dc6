"""LiveTable measures Text cells itself (the first paint of 500 hosts): the widths must be the
ones DataTable's own measuring gives, wide characters and several lines included."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from tui.widgets.live_table import LiveTable

CELLS: list[list[Any]] = [
    [Text("mac-1"), Text("online"), Text("")],
    [Text("字幕の翻訳"), Text("two\nlines, the second longer"), Text("字幕 podcast")],
    [Text("[b]not markup[/b]"), "a str cell", 3.14159],  # not all Text: DataTable measures
    [Text("\tx"), Text(" padded "), Text("ok")],
]


class Tables(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable(id="plain")
        yield LiveTable(id="live")

    def on_mount(self) -> None:
        for table in self.query(DataTable):
            for col in ("a", "b", "c"):
                table.add_column(col, key=col)
            for i, cells in enumerate(CELLS):
                table.add_row(*cells, key=str(i))


async def test_live_table_columns_are_as_wide_as_datatable_makes_them() -> None:
    app = Tables()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        plain = app.query_one("#plain", DataTable)
        live = app.query_one("#live", LiveTable)
        widths = [c.content_width for c in plain.columns.values()]
        assert widths == [c.content_width for c in live.columns.values()]
        assert widths[1] == len("lines, the second longer")
        assert widths[0] == len("[b]not markup[/b]")
        assert widths[2] == len("字幕 podcast") + 2  # two wide characters
        assert live.virtual_size == plain.virtual_size
