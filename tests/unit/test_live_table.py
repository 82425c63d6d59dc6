"""LiveTable measures Text cells itself (the first paint of 500 hosts): the widths must be the
ones DataTable's own measuring gives, wide characters and several lines included."""

from __future__ import annotations

from functools import partial
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


STYLED: list[list[Any]] = [
    [Text("mac-1", style="bold"), Text.assemble(("██", "green"), ("··", "dim"), "  42%"), Text("")],
    [Text("字幕の翻訳", style="bold yellow"), Text("ok", style="dim"), Text("🎧 podcast")],
    [Text("a" * 30), Text("x", end=""), Text("stale", style="bold yellow on red")],
    [Text("[b]not markup[/b]"), Text("two\nlines"), Text("\ttab")],  # DataTable's to draw
    [Text(""), Text("far wider than its column", style="italic"), 2.5],  # cropped: DataTable's
]


class Drawn(App[None]):
    def compose(self) -> ComposeResult:
        yield LiveTable(id="live", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(LiveTable)
        table.add_column("a", key="a")
        table.add_column("b", key="b", width=12)  # narrower than one of its cells
        table.add_column("c", key="c")
        for i, cells in enumerate(STYLED):
            table.add_row(*cells, key=str(i))


def forget_renders(table: LiveTable) -> None:
    for cache in (table._cell_render_cache, table._row_render_cache, table._line_cache):
        cache.clear()


async def test_live_table_draws_its_cells_as_datatable_does() -> None:
    """LiveTable renders one-line Text cells that fit without Rich's layers: every cell, under
    the cursor or not, hovered or not, must come out as the very segments DataTable makes."""
    app = Drawn()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        live = app.query_one(LiveTable)
        region = live.region.reset_offset
        forget_renders(live)
        ours = [list(s) for s in live.render_lines(region)]
        forget_renders(live)
        live._render_cell = partial(DataTable._render_cell, live)
        assert ours == [list(s) for s in live.render_lines(region)]
        del live._render_cell
        drawn_fast = 0
        for row in range(len(STYLED)):
            for col, column in enumerate(live.ordered_columns):
                width = column.get_render_width(live)
                for cursor in (False, True):
                    for hover in (False, True):
                        forget_renders(live)
                        ours = live._render_cell(row, col, live.rich_style, width, cursor, hover)
                        forget_renders(live)
                        theirs = DataTable._render_cell(
                            live, row, col, live.rich_style, width, cursor, hover
                        )
                        assert ours == theirs, (row, col, cursor, hover)
                drawn_fast += live._fast_cell(row, col, width) is not None
        # the first three rows, one-line Texts (markup-looking, empty) and a number's text;
        # cells of two lines, a tab or cropped went to DataTable
        assert drawn_fast == 12
