"""A DataTable for live data: updates repaint only the rows they touch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.render import measure
from textual.widgets import (
    DataTable,
)
from textual.widgets._data_table import default_cell_formatter
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey


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
