"""A DataTable for live data: updates repaint only the rows they touch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.render import measure
from textual.widgets import (
    DataTable,
)
from textual.widgets._data_table import CellCacheKey, default_cell_formatter
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

NO_STYLE = Style.null()  # what Rich's Padding pads with (its style "none")


def plain(value: Any) -> Any:
    """A cell as text, never markup: DataTable parses a `str` cell as Rich markup, and cells
    carry titles, errors and host names from outside (`[/]` in a yt-dlp error ended the app)."""
    return Text(value) if isinstance(value, str) else value


class LiveTable(DataTable[Any]):
    """A DataTable whose cell updates re-render only the rows they touch.

    DataTable.update_cell bumps a table-wide counter that is part of every render cache key, so
    one changed cell re-renders every visible cell; with hundreds of hosts heartbeating that is
    every refresh, and most of the dashboard's idle CPU. `set_cells` writes a batch of cells and
    evicts the cached renders of those cells (and their rows' lines) only. It leans on
    DataTable's cache layout (Textual 8.x, pinned by uv.lock); the snapshot and pilot tests show
    stale cells if that changes."""

    shown_rows: dict[str, Sequence[Any]] = {}  # noqa: RUF012 (replaced, never mutated)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """DataTable measures every cell of every new row through Rich's measuring protocol;
        for 500 hosts that is 5,000 cells, ~60 ms of the first paint. The width of a Text cell
        is worked out here the way Rich's Text measures itself (its longest line); rows with
        any other cell, a label or an automatic height are DataTable's to measure."""
        rest: list[RowKey] = []
        for row_key in new_rows:
            row = self.rows.get(row_key)
            cells = self._data.get(row_key)
            if (
                row is None
                or cells is None
                or row.label is not None
                or row.auto_height
                or not all(type(v) is Text for v in cells.values())
            ):
                rest.append(row_key)
                continue
            for col_key, text in cells.items():
                lines = text.plain.splitlines()
                width = max(cell_len(line) for line in lines) if lines else 0
                column = self.columns[col_key]
                if width > column.content_width:
                    column.content_width = width
        super()._update_dimensions(rest)  # those, and the table's size

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        """A one-line Text cell that fits its column, rendered without Rich's layers.

        DataTable renders every cell as Styled(Padding(cell)) through Console.render_lines;
        for a one-line Text that fits, that is its segments padded to the width, a cell's
        padding each side and the styles laid over them, which this builds directly (~4x
        faster; rendering cells was most of drawing a changed row, and of the first paint's
        rows). Anything else (a header, a label, a cell that wraps, is cropped or is not a
        Text) is DataTable's; tests/unit/test_live_table.py holds the two to the same output."""
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:  # a header or label cell
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key: CellCacheKey = (
            row_key,
            column_key,
            base_style,
            cursor,
            hover,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        cached = self._cell_render_cache.get(key)
        if cached is not None:
            return cached
        cell = self._fast_cell(row_index, column_index, width)
        if cell is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            False,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre_style = (
            base_style + Style.from_meta({"row": row_index, "column": column_index})
        ) + component_style
        console = self.app.console
        inner = width - 2 * self.cell_padding
        options = self.app.console_options.update_dimensions(inner, 1).update(no_wrap=True)
        lines = Segment.split_and_crop_lines(
            console.render(cell, options), inner, include_new_lines=False, pad=True, style=NO_STYLE
        )
        first = next(iter(lines), None)
        text = first if first is not None else [Segment(" " * inner, NO_STYLE)]
        side = [Segment(" " * self.cell_padding, NO_STYLE)] if self.cell_padding else []
        line = list(
            Segment.apply_style([*side, *text, *side], style=pre_style, post_style=post_style)
        )
        rendered = [line]
        self._cell_render_cache[key] = rendered
        return rendered

    def _fast_cell(self, row_index: int, column_index: int, width: int) -> Text | None:
        """The cell at (row_index, column_index) when `_render_cell` may draw it itself."""
        if row_index < 0 or column_index < 0 or self.fixed_rows or self.fixed_columns:
            return None
        row_key = self._row_locations.get_key(row_index)
        if row_key is None:
            return None
        row = self.rows.get(row_key)
        if row is None or row.height != 1 or (self._labelled_row_exists and self.show_row_labels):
            return None
        cells = self._get_row_renderables(row_index).cells
        cell = cells[column_index] if column_index < len(cells) else None
        if (
            type(cell) is not Text
            or cell.justify not in (None, "default")
            or "\n" in cell.plain
            or "\t" in cell.plain
            or cell.cell_len > width - 2 * self.cell_padding
        ):
            return None
        return cell

    def set_cells(self, changes: list[tuple[str, str, Any]]) -> None:
        rows: set[RowKey] = set()
        cells: set[tuple[RowKey, ColumnKey]] = set()
        wider = False
        for row, col, value in changes:
            row_key, col_key = RowKey(row), ColumnKey(col)
            if row_key not in self._row_locations or col_key not in self._column_locations:
                raise CellDoesNotExist(f"no cell {row!r}/{col!r}")
            self._data[row_key][col_key] = value
            rows.add(row_key)
            cells.add((row_key, col_key))
            column = self.columns[col_key]
            width = measure(self.app.console, default_cell_formatter(value), 1)
            if width > column.content_width:  # a column grows for a wider cell, never shrinks
                column.content_width = width
                wider = True
        if not rows:
            return
        if wider:  # every row is laid out and drawn anew: the counter is in every cache key
            self._require_update_dimensions = True
            self._update_count += 1
            self.refresh()
            return
        indexes = {self._row_locations.get(r) for r in rows}
        # only the cells that changed render again (a beat changes 3 or 4 of a row's 10, and
        # rendering a cell through Rich, ~0.3 ms, was most of drawing a changed row)
        for key in list(self._cell_render_cache.keys()):
            if (key[0], key[1]) in cells:
                self._cell_render_cache.discard(key)
        for row_render in list(self._row_render_cache.keys()):
            if row_render[0] in rows:
                self._row_render_cache.discard(row_render)
        for rkey in list(self._row_renderable_cache.keys()):
            if rkey[1] in indexes:
                self._row_renderable_cache.discard(rkey)
        self._line_cache.clear()
        # Only rows on screen need a repaint (the others render afresh when scrolled to):
        # refresh_row works out a row's region by summing the heights of the rows above it,
        # which for a hundred changed hosts of five hundred was most of a refresh.
        top = int(self.scroll_y)
        bottom = top + self.size.height
        for index in indexes:
            if index is not None and top - 1 <= index <= bottom:
                self.refresh_row(index)


def sync_rows(table: DataTable[Any], rows: dict[str, Sequence[Any]]) -> None:
    """Make `table` show `rows` (key -> cells) in that order, changing only what changed, so
    the cursor and the scroll position stay where the operator left them."""
    columns = list(table.columns)
    current = [str(k.value) for k in table.rows]
    if current != list(rows):
        keep = table.cursor_row
        selected = current[keep] if 0 <= keep < len(current) else None
        table.clear()
        for key, cells in rows.items():
            table.add_row(*map(plain, cells), key=key)
        if isinstance(table, LiveTable):
            table.shown_rows = dict(rows)
        if selected in rows:
            table.move_cursor(row=list(rows).index(selected), animate=False)
        elif rows:
            table.move_cursor(row=min(keep, len(rows) - 1), animate=False)
        return
    changes = []
    shown: dict[str, Sequence[Any]] = getattr(table, "shown_rows", {})
    for key, cells in rows.items():
        if shown.get(key) is cells:
            continue  # the very cells already shown (an unchanged host): nothing to compare
        for col, value in zip(columns, map(plain, cells), strict=True):
            old = table.get_cell(key, col)
            if old is not value and old != value:
                changes.append((key, str(col.value), value))
    if isinstance(table, LiveTable):
        table.set_cells(changes)
        table.shown_rows = dict(rows)
    else:
        for key, col_value, value in changes:
            table.update_cell(key, col_value, value)


def selected_key(table: DataTable[Any]) -> str | None:
    if table.row_count == 0 or table.cursor_row < 0:
        return None
    try:
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
    except Exception:
        return None
