"""Fleet: the home screen (queue, hosts, host actions)."""

from __future__ import annotations

import asyncio
from typing import ClassVar

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
from control.core.readmodels import FleetSnapshot, HostEntry
from tui import format as fmt
from tui.messages import FleetRead, ProvisionHost
from tui.screens.base import Base
from tui.widgets.fleet_tables import HostsTable, QueueTable
from tui.widgets.footer import Footer
from tui.widgets.host_config import HostConfig
from tui.widgets.live_table import selected_key


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
        self.last_summary = ""
        self.hosts_by_name: dict[str, HostEntry] = {}
        self.host_filter = ""
        self.last_snap: FleetSnapshot | None = None
        self._due = asyncio.Event()  # a read is asked for (the refresh tick, an action)
        self._reader: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        yield Static("", id="summary", markup=False)
        yield QueueTable(id="queue", cursor_type="none", zebra_stripes=True)
        yield Input(placeholder="filter hosts (name, state, task type)", id="filter")
        yield HostsTable(id="hosts", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        hosts = self.query_one(HostsTable)
        self.query_one("#filter", Input).display = False
        hosts.focus()
        hosts.head_hash = self.plane.code_hash

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
                self.post_message(FleetRead(snap))

    @on(FleetRead)
    def fleet_read(self, message: FleetRead) -> None:
        message.stop()
        self.show(message.snapshot)

    def show(self, snap: FleetSnapshot) -> None:
        self.last_snap = snap
        with self.app.batch_update():  # one repaint for the whole refresh
            self._show(snap)

    @on(HostsTable.RowsDue)
    def rows_due(self, message: HostsTable.RowsDue) -> None:
        """Rows scrolled on screen hold news that was not drawn while they were off it."""
        message.stop()
        if self.last_snap is not None:
            self.show(self.last_snap)

    def _show(self, snap: FleetSnapshot) -> None:
        hosts = snap.hosts
        self.hosts_by_name = {h.name: h for h in hosts}
        by_state = snap.by_state()
        per_min = snap.throughput
        totals = snap.totals
        label = self.plane.label if len(self.plane.label) <= 32 else self.plane.label[:31] + "…"
        summary = Text(no_wrap=True, overflow="ellipsis")
        summary.append(f"{label} v{snap.schema_version}", style="dim")
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

        self.query_one(QueueTable).show(snap.by_type)
        self.query_one(HostsTable).show(hosts, self.host_filter)

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
        info = self.hosts_by_name.get(host)

        def done(answer: tuple[list[str], int] | None) -> None:
            if answer is not None:
                self.configure(host, *answer)

        self.app.push_screen(
            HostConfig(
                host,
                list(info.enabled_tasks) if info else [],
                info.max_concurrent_tasks if info else None,
            ),
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
