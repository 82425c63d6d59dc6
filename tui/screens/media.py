"""Media: every item's stages and outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import (
    DataTable,
    Static,
)

from control.core import stages as pipeline
from control.core.readmodels import MediaView
from tui import format as fmt
from tui.screens.base import Base
from tui.widgets.footer import Footer
from tui.widgets.live_table import selected_key, sync_rows


class MediaScreen(Base):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("s", "cycle_source", "Source")]

    def __init__(self) -> None:
        super().__init__()
        self.source: dict[str, Any] | None = None  # show only this source's items
        self.items: dict[str, MediaView] = {}
        self.previews: dict[str, list[str]] = {}  # transcript path -> its first lines
        # the columns: the declared stages (control.core.pipeline), read when the screen opens
        self.stages = [(st.name, st.label) for st in pipeline.current()]

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Horizontal():
            yield DataTable(id="media", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="detail-pane"):
                yield Static("", id="detail", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#media", DataTable)
        table.add_column("id", key="id")
        table.add_column("state", key="state")
        for name, label in self.stages:
            table.add_column(label, key=name)
        table.add_column("title", key="title")
        table.focus()

    def load(self) -> None:
        self.fetch()

    @work(exclusive=True, group="media")
    async def fetch(self) -> None:
        source_id = self.source["id"] if self.source else None
        items = await self.guarded(self.plane.media(source_id=source_id), refresh=True)
        if items is None:
            return
        self.items = {str(i.id): i for i in items}
        rows: dict[str, Sequence[Any]] = {}
        for i in items:
            cells: list[Any] = [str(i.id), fmt.state(i.state)]
            for s, _ in self.stages:
                st = i.stages.get(s)
                label = fmt.state(st) if st else Text("")
                label.append(i.chunk_count(s))
                cells.append(label)
            cells.append(i.name[:40])
            rows[str(i.id)] = cells
        sync_rows(self.query_one("#media", DataTable), rows)
        self.show_detail()

    @work(exclusive=True, group="media-source")
    async def action_cycle_source(self) -> None:
        """All items, then each source's in turn, then all again."""
        sources = await self.guarded(self.plane.sources())
        if sources is None:
            return
        ids = [s["id"] for s in sources]
        at = ids.index(self.source["id"]) + 1 if self.source and self.source["id"] in ids else 0
        self.source = sources[at] if at < len(sources) else None
        self.notify(f"source: {self.source['name']}" if self.source else "all sources")
        self.fetch()

    @on(DataTable.RowHighlighted, "#media")
    def show_detail(self) -> None:
        key = selected_key(self.query_one("#media", DataTable))
        item = self.items.get(key or "")
        if item is None:
            self.query_one("#detail", Static).update("no media items: `contentctl add SOURCE`")
            return
        text = Text()
        text.append(f"media {item.id}  ", style="bold")
        text.append_text(fmt.state(item.state))
        text.append(f"\n{item.title or ''}\n{item.source}\n")
        if item.duration_s:
            text.append(f"length {item.duration_s:.0f} s   generation {item.generation}\n")
        for r in item.running:
            text.append(f"running: {r.type} on {r.host} {fmt.progress(r.progress)}\n", style="cyan")
        if item.error:
            text.append(f"error: {item.error}\n", style="red")
        outs = item.outputs
        for key2 in ("audio", "transcript_json", "srt", "vtt", "txt"):
            if outs.get(key2):
                text.append(f"{key2}: {outs[key2]}\n", style="dim")
        for lang, p in (outs.get("translations") or {}).items():
            text.append(f"{lang}: {p}\n", style="dim")
        txt = item.transcript
        if txt and txt in self.previews:
            text.append("\ntranscript:\n", style="bold")
            text.append("\n".join(self.previews[txt]) + "\n")
        elif txt:
            self.preview(item)
        self.query_one("#detail", Static).update(text)

    @work(exclusive=True, group="media-preview")
    async def preview(self, item: MediaView) -> None:
        """Read the transcript's first lines off the screen's thread, then show them."""
        lines = await self.guarded(self.plane.transcript_head(item))
        if lines is None or item.transcript is None:
            return
        self.previews[item.transcript] = lines
        self.show_detail()
