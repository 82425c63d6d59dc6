"""Fleet: the home screen (queue, hosts, host actions)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import (
    DataTable,
    Input,
    Static,
)
from textual.worker import Worker

from control.core.errors import ContentctlError
from tui import format as fmt
from tui.messages import ProvisionHost
from tui.screens.base import HISTORY, STATES, Base
from tui.widgets.footer import Footer
from tui.widgets.host_config import HostConfig
from tui.widgets.live_table import LiveTable, selected_key, sync_rows

BLANK = Text("")  # a cell not drawn yet


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
        self.last_beat: dict[str, str] = {}  # host -> the time of the beat last sampled
        self.row_cache: dict[str, tuple[tuple[Any, ...], list[Any]]] = {}
        # host -> (its beat, state, freshness) and running list when its cached cells were
        # made: the same again means the same cells, told without working out the row
        self.drawn_from: dict[str, tuple[tuple[Any, ...], Any]] = {}
        # host -> the entry its row was last worked out from: the hosts view hands an unchanged
        # host's entry back as the same object (its age set in place)
        self.shown_entry: dict[str, dict[str, Any]] = {}
        self.last_summary = ""
        self.hosts_by_name: dict[str, dict[str, Any]] = {}
        self.host_filter = ""
        self.head_hash: str | None = None
        self.last_snap: dict[str, Any] | None = None
        # hosts off screen whose news waits until scrolled to (their cells are older than it)
        self.offscreen_stale: set[str] = set()
        self._due = asyncio.Event()  # a read is asked for (the refresh tick, an action)
        self._reader: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="summary", markup=False)
        yield DataTable(id="queue", cursor_type="none", zebra_stripes=True)
        yield Input(placeholder="filter hosts (name, state, task type)", id="filter")
        yield LiveTable(id="hosts", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

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
        self.watch(hosts, "scroll_y", self._scrolled, init=False)
        self.head_hash = self.plane.code_hash

    def load(self) -> None:
        self._due.set()
        if self._reader is None or self._reader.is_finished:
            self._reader = self.read_loop()

    @work(group="fleet")
    async def read_loop(self) -> None:
        """One worker for the screen's life, reading when a tick or an action asks: a worker
        started at every tick was about a tenth of the idle dashboard's CPU."""
        while True:
            await self._due.wait()
            self._due.clear()
            snap = await self.guarded(self.plane.fleet(), refresh=True)
            if snap is not None:
                self.show(snap)

    def show(self, snap: dict[str, Any]) -> None:
        self.last_snap = snap
        with self.app.batch_update():  # one repaint for the whole refresh
            self._show(snap)

    def _scrolled(self) -> None:
        """Rows coming on screen may hold news that was not drawn while they were off it."""
        if self.offscreen_stale and self.last_snap is not None:
            self.show(self.last_snap)

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
        if summary.markup != self.last_summary:
            self.last_summary = summary.markup
            # no layout pass: #summary is two lines high whatever it says (dashboard.tcss), and
            # a layout of the screen with 500 hosts took 40 ms, the throughput line changing
            # every few seconds
            self.query_one("#summary", Static).update(summary, layout=False)

        by_type = snap["queue"]["by_type"]
        queue_rows: dict[str, Sequence[Any]] = {
            t: [t, *(Text(str(c[s]), style=fmt.STATE_STYLES[s] if c[s] else "dim") for s in STATES)]
            for t, c in by_type.items()
        }
        sync_rows(self.query_one("#queue", DataTable), queue_rows)

        rows: dict[str, Sequence[Any]] = {}
        needle = self.host_filter.lower()
        # Rows off screen keep their cells until scrolled to (then `_scrolled` shows them):
        # with 500 hosts, building the cells of the hundred that beat each second was most of
        # an idle refresh, and only a tenth of them are on screen.
        table = self.query_one("#hosts", LiveTable)
        order = {str(k.value): i for i, k in enumerate(table.rows)}
        top = int(table.scroll_y)
        bottom = top + table.size.height
        for h in hosts:
            name = h["name"]
            age = h.get("heartbeat_age_s")
            state = h["state"]
            if (
                h is self.shown_entry.get(name)
                and not needle
                and fmt.beat_fresh(age, state)
                and name not in self.offscreen_stale
                and (kept := self.row_cache.get(name)) is not None
                and (drawn := self.drawn_from.get(name)) is not None
                and drawn[0][2]
            ):
                # the very entry its row was drawn from, drawn fresh and still fresh: the same
                # cells, told without a look at the host (most of 500 hosts, every second)
                rows[name] = kept[1]
                continue
            self.shown_entry[name] = h
            load = h.get("load") or {}
            cpu_hist, mem_hist = self.history.setdefault(
                h["name"], (deque(maxlen=HISTORY), deque(maxlen=HISTORY))
            )
            beat_id = h.get("last_heartbeat_at")
            fresh = beat_id is not None and self.last_beat.get(h["name"]) != beat_id
            if load.get("cpu_percent") is not None and fresh:
                # one sample per heartbeat, not one per refresh
                self.last_beat[h["name"]] = beat_id
                cpu_hist.append(float(load["cpu_percent"]))
                mem_hist.append(float(load.get("mem_percent") or 0))
            if needle and not any(
                needle in str(v).lower()
                for v in (h["name"], h["state"], *(h.get("enabled_tasks") or []))
            ):
                del self.shown_entry[name]  # not drawn: its cells may fall behind its entry
                continue
            still = (beat_id, h["state"], fmt.beat_fresh(age, h["state"]))
            drawn = self.drawn_from.get(h["name"])
            at = order.get(h["name"])
            if (
                still[2]
                and drawn is not None
                and drawn[0] == still
                and drawn[1] is h.get("running")
                and h["name"] in self.row_cache
                and (
                    h["name"] not in self.offscreen_stale
                    or (at is not None and not top - 1 <= at <= bottom)
                )
            ):
                # the same beat, still fresh ("ok"), same state and tasks as last time: the
                # same cells (or, off screen, the same news still waiting to be drawn)
                rows[h["name"]] = self.row_cache[h["name"]][1]
                continue
            code = ""
            if h.get("code_hash") and self.head_hash:
                code = "ok" if h["code_hash"] == self.head_hash else "stale"
            beat = fmt.beat_age(age, h["state"])
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
            self.drawn_from[h["name"]] = (still, h.get("running"))
            if cached is not None and cached[0] == sig:
                rows[h["name"]] = cached[1]  # unchanged: the same cell objects, nothing to do
                self.offscreen_stale.discard(h["name"])
                continue
            if cached is not None and at is not None and not top - 1 <= at <= bottom:
                rows[h["name"]] = cached[1]  # off screen: drawn when scrolled to
                self.offscreen_stale.add(h["name"])
                continue
            name = Text(h["name"], style="bold" if h["state"] in ("stale", "offline") else "")
            if not order and table.size.height and len(rows) > bottom:
                # the first build: rows below the first screenful show their name, state and
                # beat, the rest when scrolled to (building every row's cells took 110-140 ms
                # of the first paint with 500 hosts; this build takes ~20)
                cells: list[Any] = [name, fmt.state(h["state"]), beat, *[BLANK] * 7]
                self.row_cache[h["name"]] = ((), cells)  # matches no row: built on screen
                self.offscreen_stale.add(h["name"])
                rows[h["name"]] = cells
                continue
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
            self.offscreen_stale.discard(h["name"])
            rows[h["name"]] = cells
        if order and list(rows) != list(order) and self.offscreen_stale:
            # the rows change (a filter, a host came or went): every row is shown anew
            self.offscreen_stale.clear()
            self.row_cache.clear()
            self.drawn_from.clear()
            self.shown_entry.clear()
            self._show(snap)
            return
        sync_rows(table, rows)

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
            self.post_message(ProvisionHost(host))  # the app switches screens
            return
        self.start_agent(host)

    @work(group="commands")
    async def start_agent(self, host: str) -> None:

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
