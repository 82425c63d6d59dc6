"""The dashboard's screens. Each one refreshes itself from the control plane while it is shown,
updating its tables in place; none holds SQL or SSH (they call `control.api`)."""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, Protocol

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    RichLog,
    SelectionList,
    Static,
)
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

from tui import format as fmt

STATES = ("queued", "scheduled", "running", "succeeded", "failed", "cancelled")
HISTORY = 12  # heartbeats of CPU/memory kept per host for the mini sparklines
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Plane(Protocol):
    """What the dashboard needs from `control.api.ControlPlane`."""

    label: str
    code_hash: str | None  # the head's code: hosts reporting another one run stale code

    async def fleet(self) -> dict[str, Any]: ...
    async def tasks(self, query: Any) -> list[dict[str, Any]]: ...
    async def task(self, task_id: int) -> dict[str, Any] | None: ...
    async def logs(
        self, host: str | None, after_id: int = 0, limit: int = 500
    ) -> list[dict[str, Any]]: ...
    async def media(self, limit: int = 200) -> list[dict[str, Any]]: ...
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


class Confirm(ModalScreen[bool]):
    """Yes/no for destructive actions: y/enter confirms, n/escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class HostConfig(ModalScreen[tuple[list[str], int] | None]):
    """A host's enabled task types and concurrency: space toggles a type, ctrl+s saves."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, host: str, enabled: Sequence[str], max_concurrent: int | None) -> None:
        super().__init__()
        self.host = host
        self.enabled = set(enabled)
        self.max_concurrent = max_concurrent or 1

    def compose(self) -> ComposeResult:
        from control.tasktypes import ALL_TYPES

        with Vertical(id="confirm"):
            yield Label(f"{self.host}: task types (space toggles) and concurrency", id="question")
            yield SelectionList[str](*((t, t, t in self.enabled) for t in ALL_TYPES), id="types")
            yield Input(str(self.max_concurrent), type="integer", id="concurrency")
            with Horizontal(id="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def action_save(self) -> None:
        types = list(self.query_one("#types", SelectionList).selected)
        try:
            conc = int(self.query_one("#concurrency", Input).value)
        except ValueError:
            conc = 0
        if conc < 1:
            self.notify("max concurrent tasks must be a whole number, at least 1", severity="error")
            return
        self.dismiss((types, conc))

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)


class Base(Screen[None]):
    """Header, database banner, footer, and a refresh loop that runs while the screen shows."""

    PALETTE: ClassVar[Sequence[tuple[str, str, str]]] = ()

    def compose_top(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner")

    def on_mount(self) -> None:
        self.show_banner(getattr(self.app, "db_error", None))
        self.refresh_data()
        self.set_interval(getattr(self.app, "refresh_s", 1.0), self.refresh_data)

    @property
    def plane(self) -> Plane:
        plane: Plane = self.app.plane  # type: ignore[attr-defined]
        return plane

    def show_banner(self, error: str | None) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(f"⚠ {error}: retrying every second" if error else "")
        banner.display = bool(error)

    def refresh_data(self) -> None:
        if self.is_current:
            self.load()

    def load(self) -> None:  # overridden: starts the screen's refresh worker
        pass

    async def guarded(self, call: Coroutine[Any, Any, Any]) -> Any:
        """Run a control-plane call; report the database's state to the app."""
        from control.api import Unavailable

        error: str | None = None
        result: Any = None
        try:
            result = await call
        except Unavailable as exc:
            error = str(exc)
        if not self.is_attached or not self.app.is_running:
            return None  # the screen went away meanwhile (the app is closing)
        self.app.database_state(error)  # type: ignore[attr-defined]
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


class LiveTable(DataTable[Any]):
    """A DataTable whose cell updates re-render only the rows they touch.

    DataTable.update_cell bumps a table-wide counter that is part of every render cache key, so
    one changed cell re-renders every visible cell; with hundreds of hosts heartbeating that is
    every refresh, and most of the dashboard's idle CPU. `set_cells` writes a batch of cells and
    evicts the cached renders of those rows only. It leans on DataTable's cache layout (Textual
    8.x, pinned by uv.lock); the snapshot and pilot tests show stale cells if that changes."""

    shown_rows: dict[str, Sequence[Any]] = {}  # noqa: RUF012 (replaced, never mutated)

    def set_cells(self, changes: list[tuple[str, str, Any]]) -> None:
        rows: set[RowKey] = set()
        for row, col, value in changes:
            row_key, col_key = RowKey(row), ColumnKey(col)
            if row_key not in self._row_locations or col_key not in self._column_locations:
                raise CellDoesNotExist(f"no cell {row!r}/{col!r}")
            self._data[row_key][col_key] = value
            rows.add(row_key)
        if not rows:
            return
        indexes = {self._row_locations.get(r) for r in rows}
        for key in list(self._cell_render_cache.keys()):
            if key[0] in rows:
                self._cell_render_cache.discard(key)
        for row_render in list(self._row_render_cache.keys()):
            if row_render[0] in rows:
                self._row_render_cache.discard(row_render)
        for rkey in list(self._row_renderable_cache.keys()):
            if rkey[1] in indexes:
                self._row_renderable_cache.discard(rkey)
        self._line_cache.clear()
        for index in indexes:
            if index is not None:
                self.refresh_row(index)


def snap_clock(snap: dict[str, Any]) -> float:
    """The snapshot's time in seconds (to tell a new heartbeat from the same one seen again)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(snap.get("generated_at"))).timestamp()
    except ValueError:
        return 0.0


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
            table.add_row(*cells, key=key)
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
        for col, value in zip(columns, cells, strict=True):
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


# -- fleet ------------------------------------------------------------------------------------
class FleetScreen(Base):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "host('drain')", "Drain"),
        Binding("u", "host('undrain')", "Undrain"),
        Binding("r", "host('restart')", "Restart"),
        Binding("x", "host('stop')", "Stop"),
        Binding("e", "edit", "Edit"),
        Binding("s", "ssh('start')", "Start"),
        Binding("p", "ssh('provision')", "Provision"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    PALETTE = (
        ("edit", "Edit host", "enabled task types and max concurrency of the selected host"),
        ("host('drain')", "Drain host", "finish running tasks, claim nothing new"),
        ("host('undrain')", "Undrain host", "claim again"),
        ("host('restart')", "Restart host's agent", "drain, then restart the agent"),
        ("host('stop')", "Stop host's agent", "stop the agent on the selected host"),
        ("ssh('start')", "Start host's agent", "start a stopped agent over SSH"),
        ("ssh('provision')", "Provision host", "plan and run provisioning for the host"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, tuple[deque[float], deque[float]]] = {}
        self.last_beat: dict[str, tuple[str, float]] = {}
        self.row_cache: dict[str, tuple[tuple[Any, ...], list[Any]]] = {}
        self.last_summary = ""
        self.hosts_by_name: dict[str, dict[str, Any]] = {}
        self.host_filter = ""
        self.head_hash: str | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="summary")
        yield DataTable(id="queue", cursor_type="none", zebra_stripes=True)
        yield Input(placeholder="filter hosts (name, state, task type)", id="filter")
        yield LiveTable(id="hosts", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        queue = self.query_one("#queue", DataTable)
        queue.add_column("type", key="type")
        for s in STATES:
            queue.add_column(s, key=s)
        hosts = self.query_one("#hosts", DataTable)
        for key, label in (
            ("name", "host"),
            ("state", "state"),
            ("beat", "beat"),
            ("cpu", "cpu"),
            ("running", "running"),
            ("idle", "idle"),
            ("today", "today"),
            ("mem", "mem"),
            ("trend", "cpu trend"),
            ("code", "code"),
        ):
            hosts.add_column(label, key=key)
        self.query_one("#filter", Input).display = False
        hosts.focus()
        self.head_hash = self.plane.code_hash

    def load(self) -> None:
        self.fetch()

    @work(exclusive=True, group="fleet")
    async def fetch(self) -> None:
        snap = await self.guarded(self.plane.fleet())
        if snap is not None:
            self.show(snap)

    def show(self, snap: dict[str, Any]) -> None:
        with self.app.batch_update():  # one repaint for the whole refresh
            self._show(snap)

    def _show(self, snap: dict[str, Any]) -> None:
        hosts = snap["hosts"]
        self.hosts_by_name = {h["name"]: h for h in hosts}
        by_state: dict[str, int] = {}
        for h in hosts:
            by_state[h["state"]] = by_state.get(h["state"], 0) + 1
        per_min = snap.get("throughput") or []
        totals = snap["queue"]["totals"]
        label = self.plane.label if len(self.plane.label) <= 32 else self.plane.label[:31] + "…"
        summary = Text(no_wrap=True, overflow="ellipsis")
        summary.append(f"{label} v{snap['database']['schema_version']}", style="dim")
        summary.append(f"  {len(hosts)} hosts ")
        for s in ("online", "draining", "drained", "stale", "offline", "disabled"):
            if by_state.get(s):
                summary.append(f" {by_state[s]} {s}", style=fmt.STATE_STYLES[s])
        rate = per_min[-2] if len(per_min) >= 2 else 0
        summary.append(f"\n{rate}/min ")
        summary.append(fmt.spark(per_min), style="green")
        summary.append(f"  {totals['queued']} queued  {totals['running']} running  ")
        summary.append(f"{totals['failed']} failed", style="red" if totals["failed"] else "")
        if summary.markup != self.last_summary:  # an update re-lays the screen out: only if new
            self.last_summary = summary.markup
            self.query_one("#summary", Static).update(summary)

        by_type = snap["queue"]["by_type"]
        queue_rows: dict[str, Sequence[Any]] = {
            t: [t, *(Text(str(c[s]), style=fmt.STATE_STYLES[s] if c[s] else "dim") for s in STATES)]
            for t, c in by_type.items()
        }
        sync_rows(self.query_one("#queue", DataTable), queue_rows)

        rows: dict[str, Sequence[Any]] = {}
        needle = self.host_filter.lower()
        clock = snap_clock(snap)
        for h in hosts:
            load = h.get("load") or {}
            cpu_hist, mem_hist = self.history.setdefault(
                h["name"], (deque(maxlen=HISTORY), deque(maxlen=HISTORY))
            )
            age = h.get("heartbeat_age_s")
            beat_id = (h["name"], round(-(age or 0) + clock, 0))
            fresh = age is not None and self.last_beat.get(h["name"]) != beat_id
            if load.get("cpu_percent") is not None and fresh:
                # one sample per heartbeat, not one per refresh
                self.last_beat[h["name"]] = beat_id
                cpu_hist.append(float(load["cpu_percent"]))
                mem_hist.append(float(load.get("mem_percent") or 0))
            if needle and not any(
                needle in str(v).lower()
                for v in (h["name"], h["state"], *(h.get("enabled_tasks") or []))
            ):
                continue
            code = ""
            if h.get("code_hash") and self.head_hash:
                code = "ok" if h["code_hash"] == self.head_hash else "stale"
            beat = fmt.beat_age(age)
            sig = (
                h["state"],
                beat.plain,
                load.get("cpu_percent"),
                load.get("mem_percent"),
                tuple(
                    (r.get("id"), r.get("progress"), r.get("stalled"))
                    for r in h.get("running") or ()
                ),
                fmt.idle(h),
                (h.get("counters") or {}).get("done_today"),
                code,
                tuple(cpu_hist),
            )
            cached = self.row_cache.get(h["name"])
            if cached is not None and cached[0] == sig:
                rows[h["name"]] = cached[1]  # unchanged: the same cell objects, nothing to do
                continue
            name = Text(h["name"], style="bold" if h["state"] in ("stale", "offline") else "")
            cells = [
                name,
                fmt.state(h["state"]),
                beat,
                fmt.bar(load.get("cpu_percent"), 4),
                fmt.running(h),
                fmt.idle(h),
                str((h.get("counters") or {}).get("done_today", "")),
                fmt.bar(load.get("mem_percent"), 4),
                fmt.spark(list(cpu_hist), 100),
                Text(code, style="bold yellow" if code == "stale" else "dim"),
            ]
            self.row_cache[h["name"]] = (sig, cells)
            rows[h["name"]] = cells
        sync_rows(self.query_one("#hosts", DataTable), rows)

    def selected_host(self) -> str | None:
        return selected_key(self.query_one("#hosts", DataTable))

    def action_host(self, command: str) -> None:
        host = self.selected_host()
        if host is None:
            self.notify("no host selected", severity="warning")
            return
        question = {
            "drain": f"Drain {host}? It finishes its running tasks and claims nothing new.",
            "restart": f"Restart the agent on {host}? It drains first.",
            "stop": f"Stop the agent on {host}? Running tasks go back to the queue.",
        }.get(command)
        if question is None:
            self.send(host, command)
        else:
            self.confirm_then(question, lambda: self.send(host, command))

    def action_edit(self) -> None:
        host = self.selected_host()
        if host is None:
            self.notify("no host selected", severity="warning")
            return
        info = self.hosts_by_name.get(host, {})

        def done(answer: tuple[list[str], int] | None) -> None:
            if answer is not None:
                self.configure(host, *answer)

        self.app.push_screen(
            HostConfig(host, info.get("enabled_tasks") or [], info.get("max_concurrent_tasks")),
            done,
        )

    @work(group="commands")
    async def configure(self, host: str, types: list[str], conc: int) -> None:
        try:
            said = await self.guarded(self.plane.configure_host(host, types, conc))
        except Exception as exc:  # a bad inventory, a file we cannot write: say it, stay up
            self.notify(f"{host}: {exc}", severity="error")
            return
        if said:
            self.notify(f"{host}: {said}")
        self.load()

    @work(group="commands")
    async def send(self, host: str, command: str) -> None:
        self.notify(f"{command} → {host}…", timeout=2)
        result = await self.guarded(self.plane.command(host, command))
        if result is None:
            return
        if result.acknowledged:
            self.notify(f"{host}: {result.outcome or command + ' acknowledged'}")
        else:
            self.notify(
                f"{host}: no acknowledgement: is its agent running? (contentctl status)",
                severity="error",
            )
        self.load()

    def action_ssh(self, what: str) -> None:
        host = self.selected_host()
        if host is None:
            self.notify("no host selected", severity="warning")
            return
        if what == "provision":
            self.app.switch_mode("provision")
            screen = self.app.screen
            if isinstance(screen, ProvisionScreen):
                screen.select(host)
                screen.run_provision(host, dry_run=True)
            return
        self.start_agent(host)

    @work(group="commands")
    async def start_agent(self, host: str) -> None:
        from control.errors import ContentctlError

        self.notify(f"starting {host} over SSH…", timeout=2)
        try:
            said = await self.plane.start_agent(host)
        except ContentctlError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"{host}: {said}")
        self.load()

    def filter_cleared(self) -> None:
        self.host_filter = ""
        self.query_one("#hosts", DataTable).focus()
        self.load()

    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.host_filter = event.value
        self.load()

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one("#hosts", DataTable).focus()


# -- tasks ------------------------------------------------------------------------------------
class TasksScreen(Base):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", "retry", "Retry"),
        Binding("c", "cancel", "Cancel"),
        Binding("plus", "priority", "Priority +10"),
        Binding("s", "cycle_state", "State"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("right_square_bracket", "page(1)", "Next page"),
        Binding("left_square_bracket", "page(-1)", "Prev page"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    PALETTE = (
        ("retry", "Retry task", "move the selected failed task back to the queue"),
        ("cancel", "Cancel task", "cancel the selected task"),
        ("priority", "Raise priority", "priority +10 for the selected queued task"),
    )
    PAGE = 100
    SORTS = ("newest", "oldest", "priority")

    def __init__(self) -> None:
        super().__init__()
        self.state_filter: str | None = None
        self.search = ""
        self.sort = "newest"
        self.page_start = 0
        self.shown_detail: int | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="filters")
        yield Input(
            placeholder="filter: text, or state:failed type:transcribe host:mac-1", id="filter"
        )
        with Horizontal():
            yield DataTable(id="tasks", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="detail-pane"):
                yield Static("", id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#tasks", DataTable)
        for key in ("id", "type", "state", "pri", "try", "host", "progress", "error"):
            table.add_column(key, key=key)
        self.query_one("#filter", Input).display = False
        table.focus()

    def task_query(self) -> Any:
        from control.api import TaskQuery

        words = {}
        free = []
        for part in self.search.split():
            key, sep, value = part.partition(":")
            if sep and key in ("state", "type", "host"):
                words[key] = value
            else:
                free.append(part)
        return TaskQuery(
            state=words.get("state") or self.state_filter,
            type=words.get("type"),
            host=words.get("host"),
            text=" ".join(free) or None,
            sort=self.sort,
            offset=self.page_start,
            limit=self.PAGE,
        )

    def load(self) -> None:
        self.fetch()

    @work(exclusive=True, group="tasks")
    async def fetch(self) -> None:
        q = self.task_query()
        rows = await self.guarded(self.plane.tasks(q))
        if rows is None:
            return
        page = self.page_start // self.PAGE + 1
        self.query_one("#filters", Static).update(
            f"state: {q.state or 'any'}   type: {q.type or 'any'}   host: {q.host or 'any'}   "
            f"text: {q.text or '-'}   sort: {self.sort}   page {page}"
        )
        table = self.query_one("#tasks", DataTable)
        sync_rows(
            table,
            {
                str(r["id"]): [
                    str(r["id"]),
                    r["type"],
                    fmt.state(r["state"]),
                    str(r["priority"]),
                    f"{r['attempts']}/{r['max_attempts']}",
                    r["host"] or "",
                    fmt.progress(r["progress"], 6) if r["state"] == "running" else "",
                    (r["error_message"] or "")[:60],
                ]
                for r in rows
            },
        )
        await self.show_detail()

    async def show_detail(self) -> None:
        key = selected_key(self.query_one("#tasks", DataTable))
        if key is None:
            self.query_one("#detail", Static).update("no tasks match")
            return
        t = await self.guarded(self.plane.task(int(key)))
        if t is None:
            return
        text = Text()
        text.append(f"task {t['id']}  ", style="bold")
        text.append_text(fmt.state(t["state"]))
        text.append(
            f"\n{t['type']}  priority {t['priority']}  attempts {t['attempts']}/"
            f"{t['max_attempts']}  host {t['host'] or '-'}\n"
        )
        for label, key2 in (
            ("created", "created_at"),
            ("started", "started_at"),
            ("finished", "finished_at"),
            ("run at", "run_at"),
        ):
            text.append(f"{label:>9}: {fmt.when(t.get(key2))}\n", style="dim")
        if t.get("progress") is not None:
            text.append(
                f" progress: {fmt.progress(t['progress'])} {t.get('progress_stage') or ''}\n"
            )
        if t.get("media_id"):
            text.append(f"    media: {t['media_id']}\n")
        text.append("payload:\n", style="bold")
        text.append(json.dumps(t.get("payload"), indent=1)[:1200] + "\n")
        if t.get("result"):
            text.append("result:\n", style="bold")
            text.append(json.dumps(t["result"], indent=1)[:800] + "\n")
        if t.get("error"):
            text.append("error:\n", style="bold red")
            text.append(f"{t.get('error_type') or ''}: {t['error']}\n", style="red")
        if t.get("error_traceback"):
            tail = "\n".join(str(t["error_traceback"]).strip().splitlines()[-12:])
            text.append(tail + "\n", style="dim")
        self.query_one("#detail", Static).update(text)

    @on(DataTable.RowHighlighted, "#tasks")
    async def highlighted(self) -> None:
        await self.show_detail()

    def selected(self) -> int | None:
        key = selected_key(self.query_one("#tasks", DataTable))
        return int(key) if key else None

    @work(group="task-actions")
    async def act(self, what: str, task_id: int) -> None:
        if what == "retry":
            moved = await self.guarded(self.plane.retry([task_id]))
            if moved is not None:
                self.notify(
                    f"task {task_id} re-queued"
                    if moved
                    else f"task {task_id} is not failed: nothing to retry",
                    severity="information" if moved else "warning",
                )
        elif what == "cancel":
            done = await self.guarded(self.plane.cancel([task_id]))
            if done is not None:
                self.notify(
                    f"task {task_id}: cancel requested"
                    if done
                    else f"task {task_id} already finished",
                    severity="information",
                )
        elif what == "priority":
            new = await self.guarded(self.plane.raise_priority(task_id))
            self.notify(
                f"task {task_id}: priority {new}"
                if new is not None
                else f"task {task_id} is not waiting: priority unchanged"
            )
        self.load()

    def _act(self, what: str, task_id: int) -> None:
        self.act(what, task_id)

    def action_retry(self) -> None:
        if (task_id := self.selected()) is not None:
            self.act("retry", task_id)

    def action_cancel(self) -> None:
        if (task_id := self.selected()) is not None:
            self.confirm_then(f"Cancel task {task_id}?", lambda: self._act("cancel", task_id))

    def action_priority(self) -> None:
        if (task_id := self.selected()) is not None:
            self.act("priority", task_id)

    def action_cycle_state(self) -> None:
        order: list[str | None] = [None, *STATES]
        self.state_filter = order[(order.index(self.state_filter) + 1) % len(order)]
        self.page_start = 0
        self.load()

    def action_cycle_sort(self) -> None:
        self.sort = self.SORTS[(self.SORTS.index(self.sort) + 1) % len(self.SORTS)]
        self.page_start = 0
        self.load()

    def action_page(self, step: int) -> None:
        self.page_start = max(0, self.page_start + step * self.PAGE)
        self.load()

    def filter_cleared(self) -> None:
        self.search = ""
        self.page_start = 0
        self.query_one("#tasks", DataTable).focus()
        self.load()

    @on(Input.Submitted, "#filter")
    def filter_done(self, event: Input.Submitted) -> None:
        self.search = event.value
        self.page_start = 0
        self.query_one("#tasks", DataTable).focus()
        self.load()


# -- logs -------------------------------------------------------------------------------------
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
        self.hosts: list[str] = []
        self.level = "DEBUG"
        self.follow = True
        self.search = ""
        self.last_id = 0
        self.buffer: deque[dict[str, Any]] = deque(maxlen=self.KEEP)

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="filters")
        yield Input(placeholder="search the log lines", id="filter")
        yield RichLog(id="log", wrap=False, markup=False, max_lines=self.KEEP)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#log", RichLog).focus()

    def load(self) -> None:
        self.fetch()

    @work(exclusive=True, group="logs")
    async def fetch(self) -> None:
        if not self.hosts:
            snap = await self.guarded(self.plane.fleet())
            if snap is not None:
                self.hosts = [h["name"] for h in snap["hosts"]]
        rows = await self.guarded(self.plane.logs(self.host, after_id=self.last_id, limit=1000))
        if rows is None:
            return
        self.show_filters()
        if not rows:
            return
        self.last_id = max(self.last_id, *(int(r["id"]) for r in rows))
        self.buffer.extend(rows)
        if self.follow:
            log = self.query_one("#log", RichLog)
            for r in rows:
                if self.wanted(r):
                    log.write(self.format_line(r))

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


# -- media ------------------------------------------------------------------------------------
class MediaScreen(Base):
    STAGES = ("download", "extract_audio", "transcribe", "stitch", "translate")

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        with Horizontal():
            yield DataTable(id="media", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="detail-pane"):
                yield Static("", id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#media", DataTable)
        for key in ("id", "state", *self.STAGES, "title"):
            table.add_column("extract" if key == "extract_audio" else key, key=key)
        table.focus()

    def load(self) -> None:
        self.fetch()

    @work(exclusive=True, group="media")
    async def fetch(self) -> None:
        items = await self.guarded(self.plane.media())
        if items is None:
            return
        self.items = {str(i["id"]): i for i in items}
        rows: dict[str, Sequence[Any]] = {}
        for i in items:
            cells: list[Any] = [str(i["id"]), fmt.state(i["state"])]
            for s in self.STAGES:
                st = i["stages"].get(s)
                label = fmt.state(st) if st else Text("")
                if s == "transcribe" and i["progress"]["chunks"] > 1:
                    label.append(f" {i['progress']['chunks_done']}/{i['progress']['chunks']}")
                cells.append(label)
            cells.append((i.get("title") or i["source"])[:40])
            rows[str(i["id"])] = cells
        sync_rows(self.query_one("#media", DataTable), rows)
        self.show_detail()

    @on(DataTable.RowHighlighted, "#media")
    def show_detail(self) -> None:
        key = selected_key(self.query_one("#media", DataTable))
        item = self.items.get(key or "")
        if item is None:
            self.query_one("#detail", Static).update("no media items: `contentctl add SOURCE`")
            return
        text = Text()
        text.append(f"media {item['id']}  ", style="bold")
        text.append_text(fmt.state(item["state"]))
        text.append(f"\n{item.get('title') or ''}\n{item['source']}\n")
        if item.get("duration_s"):
            text.append(f"length {item['duration_s']:.0f} s   generation {item['generation']}\n")
        for r in item["progress"]["running"]:
            text.append(
                f"running: {r['type']} on {r['host']} {fmt.progress(r['progress'])}\n", style="cyan"
            )
        if item.get("error"):
            text.append(f"error: {item['error']}\n", style="red")
        outs = item["outputs"]
        for key2 in ("audio", "transcript_json", "srt", "vtt", "txt"):
            if outs.get(key2):
                text.append(f"{key2}: {outs[key2]}\n", style="dim")
        for lang, p in (outs.get("translations") or {}).items():
            text.append(f"{lang}: {p}\n", style="dim")
        self.query_one("#detail", Static).update(text)


# -- provision --------------------------------------------------------------------------------
class ProvisionScreen(Base):
    """Pick a host, see its plan (a dry run), run it, and watch each step report."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "plan", "Plan"),
        Binding("a", "apply", "Apply"),
    ]
    PALETTE = (
        ("plan", "Provision: plan", "what provisioning the selected host would change"),
        ("apply", "Provision: apply", "provision the selected host"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.busy = False

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("p: plan (changes nothing)   a: apply", id="filters")
        with Horizontal():
            yield DataTable(id="targets", cursor_type="row", zebra_stripes=True)
            yield RichLog(id="steps", wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#targets", DataTable)
        for key in ("host", "address", "user", "env", "base_dir"):
            table.add_column(key, key=key)
        table.focus()

    def load(self) -> None:
        hosts = self.plane.ssh_hosts()
        sync_rows(
            self.query_one("#targets", DataTable),
            {
                h["name"]: [h["name"], h["address"], h["user"], h["env"], h["base_dir"]]
                for h in hosts
            },
        )
        if not hosts:
            self.query_one("#filters", Static).update(
                "no ssh hosts in the inventory: add one (transport: ssh) to provision it"
            )

    def select(self, host: str) -> None:
        table = self.query_one("#targets", DataTable)
        with contextlib.suppress(Exception):
            table.move_cursor(row=table.get_row_index(host))

    def action_plan(self) -> None:
        if (host := selected_key(self.query_one("#targets", DataTable))) is not None:
            self.run_provision(host, dry_run=True)

    def action_apply(self) -> None:
        host = selected_key(self.query_one("#targets", DataTable))
        if host is not None:
            self.confirm_then(
                f"Provision {host}? Code, environment, secrets and the agent service are "
                "brought up to date; the agent restarts if anything changed.",
                lambda: self.run_provision(host, dry_run=False),
            )

    @work(exclusive=True, group="provision")
    async def run_provision(self, host: str, *, dry_run: bool) -> None:
        from control.errors import ContentctlError

        if self.busy:
            self.notify("a provisioning run is going on", severity="warning")
            return
        self.busy = True
        log = self.query_one("#steps", RichLog)
        log.write(Text(f"{'plan' if dry_run else 'provision'} {host}", style="bold"))

        def step(st: dict[str, Any]) -> None:
            line = Text(f"  {st['name']:15} ")
            line.append(f"{st['status']:13}", style=STEP_STYLES.get(st["status"], ""))
            line.append(f" {st['seconds']:5.1f}s  {st['detail']}")
            log.write(line)

        try:
            done = await self.guarded(self.plane.provision(host, dry_run=dry_run, on_step=step))
        except ContentctlError as exc:
            log.write(Text(f"  {exc}", style="red"))
            return
        finally:
            self.busy = False
        if done is not None:
            verdict = (
                "failed"
                if done["failed"]
                else (
                    ("would change" if dry_run else "changed") if done["changed"] else "no changes"
                )
            )
            log.write(Text(f"{host}: {verdict}", style="red" if done["failed"] else "green"))


STEP_STYLES = {
    "ok": "green",
    "changed": "yellow",
    "would-change": "yellow",
    "failed": "bold red",
    "skipped": "dim",
}
