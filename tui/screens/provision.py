"""Provision: plan and run provisioning for a host, steps streamed."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import (
    DataTable,
    RichLog,
    Static,
)

from control.core.errors import ContentctlError
from control.core.redact import visible
from tui.screens.base import Base
from tui.widgets.footer import Footer
from tui.widgets.live_table import selected_key, sync_rows


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
        yield Static("p: plan (changes nothing)   a: apply", id="filters", markup=False)
        with Horizontal():
            yield DataTable(id="targets", cursor_type="row", zebra_stripes=True)
            yield RichLog(id="steps", wrap=True, markup=False)
        yield Footer(compact=True)

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
            self.start(host, dry_run=True)

    def action_apply(self) -> None:
        host = selected_key(self.query_one("#targets", DataTable))
        if host is not None:
            self.confirm_then(
                f"Provision {host}? Code, environment, secrets and the agent service are "
                "brought up to date; the agent restarts if anything changed.",
                lambda: self.start(host, dry_run=False),
            )

    def start(self, host: str, *, dry_run: bool) -> None:
        """One run at a time: a second press says so and leaves the run in flight alone (an
        exclusive worker would cancel it, a plan could cancel an apply)."""
        if self.busy:
            self.notify("a provisioning run is going on", severity="warning")
            return
        self.busy = True
        self.run_provision(host, dry_run=dry_run)

    @work(group="provision")
    async def run_provision(self, host: str, *, dry_run: bool) -> None:

        log = self.query_one("#steps", RichLog)
        log.write(Text(f"{'plan' if dry_run else 'provision'} {host}", style="bold"))

        def step(st: dict[str, Any]) -> None:
            line = Text(f"  {st['name']:15} ")
            line.append(f"{st['status']:13}", style=STEP_STYLES.get(st["status"], ""))
            # what the host printed: outside text, control characters made visible
            line.append(f" {st['seconds']:5.1f}s  {visible(str(st['detail']))}")
            log.write(line)

        try:
            done = await self.guarded(self.plane.provision(host, dry_run=dry_run, on_step=step))
        except ContentctlError as exc:
            log.write(Text(f"  {visible(str(exc))}", style="red"))
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
