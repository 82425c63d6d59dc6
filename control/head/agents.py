"""Operator commands to agents through the database: drain, undrain, restart, stop.

A command is a row for the host's agent plus a NOTIFY; the agent acknowledges it within a
heartbeat at most (at once when the notification arrives). The sender waits for the
acknowledgement, with a deadline, and reports per host."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from control.core import db, fleet
from control.core.db import AsyncConn
from control.core.errors import UsageError
from control.core.inventory import Inventory
from control.core.sql import q

ACK_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class CommandResult:
    host: str
    acknowledged: bool
    outcome: str | None


async def send_and_wait(
    conn: AsyncConn,
    hosts: list[str],
    command: str,
    args: dict[str, Any] | None = None,
    *,
    timeout_s: float = ACK_TIMEOUT_S,
    poll_s: float = 0.1,
) -> list[CommandResult]:
    ids = {await fleet.send_command(conn, h, command, args or {}): h for h in hosts}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        states = await fleet.command_states(conn, list(ids))
        if all(s["acked_at"] is not None for s in states.values()) or loop.time() >= deadline:
            break
        await asyncio.sleep(poll_s)
    return [
        CommandResult(host, states[cid]["acked_at"] is not None, states[cid]["outcome"])
        for cid, host in ids.items()
    ]


async def forget(conn: AsyncConn, inventory: Inventory, host: str) -> None:
    """Remove a host the inventory no longer declares (its rows; finished tasks keep its name).
    Refused while the inventory declares it, while it holds running tasks, or while its agent's
    database session lives."""
    if inventory.host(host) is not None:
        raise UsageError(
            f"{host} is declared in {inventory.path}: remove it from the inventory first"
        )
    row = await db.row(conn, q("forget_host"), {"host": host})
    assert row is not None
    if not row["known"] and not row["forgotten"]:
        raise UsageError(f"no host named {host!r}: see `contentctl status`")
    if row["held"]:
        raise UsageError(
            f"{host} holds {row['held']} running task(s): cancel them or wait (its leases run "
            "out if its agent is gone)"
        )
    if row["alive"]:
        raise UsageError(f"{host}'s agent is connected: stop it first (`contentctl agent stop`)")
