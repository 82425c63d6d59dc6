"""Operator commands to agents through the database: drain, undrain, restart, stop.

A command is a row for the host's agent plus a NOTIFY; the agent acknowledges it within a
heartbeat at most (at once when the notification arrives). The sender waits for the
acknowledgement, with a deadline, and reports per host."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from control.core import fleet
from control.core.db import AsyncConn

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
