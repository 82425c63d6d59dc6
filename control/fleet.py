"""Hosts as the database sees them: heartbeats in, host states out (CONTRACT.md, Host states)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from control.db import AsyncConn
from control.sql import q

HEARTBEAT_INTERVAL_S = 5.0
STALE_AFTER_S = 3 * HEARTBEAT_INTERVAL_S  # three missed heartbeats
OFFLINE_AFTER_S = 60.0
AGENT_STATES = ("online", "draining", "drained", "stopped")
HOST_STATES = ("online", "stale", "offline", "draining", "drained", "disabled")


@dataclass
class Heartbeat:
    name: str
    address: str | None
    agent_state: str
    agent_version: str
    code_hash: str
    pid: int
    started_at: datetime
    enabled_tasks: list[str]
    declared: bool
    body: dict[str, Any] = field(default_factory=dict)  # load, counters, idle_reason


async def send_heartbeat(conn: AsyncConn, hb: Heartbeat) -> None:
    await conn.execute(
        q("heartbeat"),
        {
            "name": hb.name,
            "address": hb.address,
            "agent_state": hb.agent_state,
            "agent_version": hb.agent_version,
            "code_hash": hb.code_hash,
            "pid": hb.pid,
            "started_at": hb.started_at,
            "enabled_tasks": hb.enabled_tasks,
            "declared": hb.declared,
            "heartbeat": Jsonb(hb.body),
        },
    )


def host_state(agent_state: str | None, heartbeat_age_s: float | None, enabled: bool = True) -> str:
    """What the operator sees: disabled beats all; silence makes a host stale, then offline."""
    if not enabled:
        return "disabled"
    if agent_state is None or heartbeat_age_s is None or agent_state == "stopped":
        return "offline"
    if heartbeat_age_s > OFFLINE_AFTER_S:
        return "offline"
    if heartbeat_age_s > STALE_AFTER_S:
        return "stale"
    return agent_state


async def hosts_rows(conn: AsyncConn) -> list[dict[str, Any]]:
    cur = await conn.execute(q("hosts_snapshot"))
    return [dict(r) for r in await cur.fetchall()]


async def running_rows(conn: AsyncConn) -> list[dict[str, Any]]:
    cur = await conn.execute(q("running_tasks"))
    return [dict(r) for r in await cur.fetchall()]
