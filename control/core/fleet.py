"""Hosts as the database sees them: heartbeats in, host states out (docs/contract.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from psycopg.types.json import Jsonb

from control.core import db
from control.core.db import AsyncConn
from control.core.queue import SWEEP_TURN_S, LeaseState, lease_states
from control.core.readmodels import (  # how a host's state is read from its beats
    HEARTBEAT_INTERVAL_S,
    HOST_STATES,
    HUNG_AFTER_S,
    LIVENESS_EVERY,
    OFFLINE_AFTER_S,
    STALE_AFTER_S,
    TOUCH_S,
    HeartbeatBody,
    host_state,
)
from control.core.sql import q

__all__ = [
    "HEARTBEAT_INTERVAL_S",
    "HOST_STATES",
    "HUNG_AFTER_S",
    "LIVENESS_EVERY",
    "OFFLINE_AFTER_S",
    "STALE_AFTER_S",
    "TOUCH_S",
    "host_state",
]

AGENT_STATES = ("online", "draining", "drained", "stopped")
COMMAND_CHANNEL = "contentctl_commands"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
PROGRESS_STEP = 0.05  # progress moves below this ride along with the next write


class BeatGate:
    """Whether a heartbeat must be written now: its content changed (state, running tasks and
    their progress, idle reason, storage, counters), or LIVENESS_EVERY beats passed. Load
    figures, uptime and the time of the last storage check alone do not count: they ride
    along with the next write."""

    def __init__(self, every: int = LIVENESS_EVERY) -> None:
        self.every = every
        self._last: str | None = None
        self._skipped = 0

    def due(self, hb: Heartbeat, *, force: bool = False) -> bool:
        """Whether to write `hb`; `force`: it is written anyway (leases to renew)."""
        key = _fingerprint(hb)
        if force or key != self._last or self._skipped + 1 >= self.every:
            self._last, self._skipped = key, 0
            return True
        self._skipped += 1
        return False


def _fingerprint(hb: Heartbeat) -> str:
    b = hb.body
    body = {k: v for k, v in b.extra.items() if k != "uptime_s"}
    body.update(
        counters=b.counters,
        idle=(b.idle_reason, b.idle_until),
        # when the storage was checked rides along; what the check found does not
        storage=None if b.storage is None else (b.storage.ok, b.storage.error),
        running=[
            (t.id, t.type, t.stage, t.stalled, round((t.progress or 0) / PROGRESS_STEP))
            for t in b.running
        ],
        last_restart=b.last_restart,
    )
    return json.dumps([hb.agent_state, hb.session_key, body], sort_keys=True, default=str)


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
    body: HeartbeatBody = field(default_factory=HeartbeatBody)
    session_key: int | None = None  # the session key of the connection it is written on


@dataclass(frozen=True)
class BeatReply:
    """What a written heartbeat learned on the same round trip."""

    commands_waiting: bool = False  # commands wait for this host
    schedules_due: bool = False  # a schedule is due: tick
    sweep_due: bool = False  # expired leases that must not run again: sweep
    expired_claimable: bool = False  # an expired lease of a type this host runs: claim now
    storage_id: str | None = None  # the fleet's storage id (`storage init`), if any
    leases: dict[uuid.UUID, LeaseState] = field(default_factory=dict)  # the renewals sent
    peers: dict[str, list[str]] | None = None  # live hosts -> their types, when asked for


async def beat(
    conn: AsyncConn,
    hb: Heartbeat,
    *,
    renew: Sequence[uuid.UUID] = (),
    lease_s: float = 30.0,
    peers: bool = False,
) -> BeatReply:
    """Record a heartbeat, renewing the leases of `renew` with it: both statements go in one
    pipeline, so the server is woken once (a round trip, not the statements, is most of what
    a beat costs it). With `peers`, the reply lists the live hosts and their types."""
    params = {**_heartbeat_params(hb), "want_peers": peers}
    leases = None
    if renew:
        async with conn.pipeline():
            leases = await conn.execute(
                q("renew_leases"),
                {"tokens": list(renew), "lease_s": lease_s, "session": hb.session_key},
            )
            cur = await conn.execute(q("beat"), params)
    else:
        cur = await conn.execute(q("beat"), params)
    row = await cur.fetchone()
    if row is None:  # the unlogged row is gone (server crash): write it again
        await conn.execute(q("heartbeat"), params)
        cur = await conn.execute(q("beat"), params)
        row = await cur.fetchone()
    held = lease_states(renew, await leases.fetchall()) if leases is not None else {}
    if row is None:
        return BeatReply(leases=held)
    return BeatReply(
        commands_waiting=bool(row["commands_waiting"]),
        schedules_due=bool(row["schedules_due"]),
        sweep_due=bool(row["sweep_due"]),
        expired_claimable=bool(row["expired_claimable"]),
        storage_id=None if row["storage_id"] is None else str(row["storage_id"]),
        leases=held,
        peers=cast("dict[str, list[str]] | None", row["peers"]),
    )


async def pass_on(conn: AsyncConn, xid: str, host: str) -> None:
    """This host was first for an announcement but cannot claim (agent/wakeup.py)."""
    await conn.execute(q("pass_on"), {"xid": int(xid), "host": host})


async def register(conn: AsyncConn, hb: Heartbeat) -> None:
    """An agent's identity (version, code, pid, types), once when it starts and when its types
    change; the peers are told (`peers_changed`)."""
    params = _heartbeat_params(hb)
    async with conn.transaction():
        await conn.execute(q("register"), params)
        await conn.execute(q("heartbeat"), params)
        await conn.execute(q("peers_changed"))


async def send_heartbeat(conn: AsyncConn, hb: Heartbeat) -> None:
    """A heartbeat written out of turn: a new state (drained, online again, offline at the
    end), which the peers are told of (`peers_changed`)."""
    async with conn.transaction():
        await conn.execute(q("heartbeat"), _heartbeat_params(hb))
        await conn.execute(q("peers_changed"))


def _heartbeat_params(hb: Heartbeat) -> dict[str, Any]:
    return {
        "name": hb.name,
        "address": hb.address,
        "agent_state": hb.agent_state,
        "agent_version": hb.agent_version,
        "code_hash": hb.code_hash,
        "pid": hb.pid,
        "started_at": hb.started_at,
        "enabled_tasks": hb.enabled_tasks,
        "declared": hb.declared,
        "heartbeat": Jsonb(hb.body.to_json()),
        "session_key": hb.session_key,
        "sweep_turn_s": SWEEP_TURN_S,
    }


def row_state(row: dict[str, Any] | None, enabled: bool = True) -> str:
    """`host_state` of a row of `hosts_rows` (None: the host never beat)."""
    if row is None:
        return host_state(None, None, enabled)
    return host_state(
        row["agent_state"],
        row["heartbeat_age_s"],
        enabled,
        session_alive=row.get("session_alive"),
    )


async def hosts_rows(conn: AsyncConn) -> list[dict[str, Any]]:
    return await db.rows(conn, q("hosts_snapshot"))


async def sessions_gone(conn: AsyncConn) -> set[str]:
    """The hosts whose agent kept a session key and whose session has ended."""
    found = await db.row(conn, q("sessions_gone"))
    return set(cast(list[str], found["names"])) if found else set()


async def running_rows(conn: AsyncConn, hosts: list[str] | None = None) -> list[dict[str, Any]]:
    """Running tasks: all of them, or those of `hosts`."""
    if hosts is None:
        return await db.rows(conn, q("running_tasks"))
    return await db.rows(conn, q("running_tasks_of"), {"hosts": hosts})


async def hosts_beaten_since(
    conn: AsyncConn, since: datetime, seen: dict[str, datetime]
) -> list[dict[str, Any]]:
    """The rows of `hosts_rows` whose beat was written at or after `since`, but for the beats
    in `seen` (host -> beat time: already read)."""
    micros = {name: (at - EPOCH) // MICROSECOND for name, at in seen.items()}
    params = {"since": since, "seen": Jsonb(micros)}
    return await db.rows(conn, q("hosts_beaten_since"), params)


async def server_now(conn: AsyncConn) -> datetime:
    row = await db.row(conn, q("server_now"))
    assert row is not None
    return row["now"]  # type: ignore[no-any-return]


# -- daily counters ---------------------------------------------------------------------------
async def daily_counts(conn: AsyncConn, host: str, day: date) -> dict[str, int]:
    found = await db.rows(conn, q("count_daily"), {"host": host, "day": day})
    return {str(r["type"]): int(r["count"]) for r in found}


async def done_since(conn: AsyncConn, host: str, since: datetime) -> int:
    row = await db.row(conn, q("done_since"), {"host": host, "since": since})
    return int(row["n"]) if row else 0


# -- commands ---------------------------------------------------------------------------------
COMMANDS = ("drain", "undrain", "restart", "stop", "configure")


async def drain_requested(conn: AsyncConn, host: str) -> bool:
    cur = await conn.execute(q("drain_requested"), {"host": host})
    row = await cur.fetchone()
    return bool(row and row["drain_requested"])


async def pending_commands(conn: AsyncConn, host: str) -> list[dict[str, Any]]:
    cur = await conn.execute(q("pending_commands"), {"host": host})
    return [dict(r) for r in await cur.fetchall()]


async def ack_command(conn: AsyncConn, command_id: int, outcome: str) -> None:
    await conn.execute(q("ack_command"), {"id": command_id, "outcome": outcome})


async def command_done(conn: AsyncConn, ids: list[int]) -> None:
    if ids:
        await conn.execute(q("command_done"), {"ids": ids})


async def send_command(conn: AsyncConn, host: str, command: str, args: dict[str, Any]) -> int:
    """Record a command for a host's agent and wake it (NOTIFY in the same transaction)."""
    async with conn.transaction():
        cur = await conn.execute(
            q("send_command"), {"host": host, "command": command, "args": Jsonb(args)}
        )
        row = await cur.fetchone()
        await conn.execute("SELECT pg_notify(%s, %s)", (COMMAND_CHANNEL, host))
    assert row is not None
    return int(str(row["id"]))


async def command_states(conn: AsyncConn, ids: list[int]) -> dict[int, dict[str, Any]]:
    return {int(r["id"]): r for r in await db.rows(conn, q("command_state"), {"ids": ids})}


# -- logs -------------------------------------------------------------------------------------
LOGS_KEPT_PER_HOST = 5000


async def insert_logs(conn: AsyncConn, host: str, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    await conn.execute(
        q("insert_logs"),
        {
            "host": host,
            "ts": [r["ts"] for r in records],
            "levels": [r["level"] for r in records],
            "loggers": [r["logger"] for r in records],
            "messages": [r["message"] for r in records],
            "task_ids": [r.get("task_id") for r in records],
            "extras": [Jsonb(r.get("extra") or {}) for r in records],
        },
    )


async def prune_logs(conn: AsyncConn, host: str, keep: int = LOGS_KEPT_PER_HOST) -> None:
    await conn.execute(q("prune_logs"), {"host": host, "keep": keep})


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


async def recent_logs(
    conn: AsyncConn,
    host: str | None,
    *,
    after_id: int = 0,
    limit: int = 100,
    min_level: str | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """The newest `limit` lines (of `host`, or every host), oldest first; `min_level` and up,
    from `since` on."""
    levels = list(LOG_LEVELS[LOG_LEVELS.index(min_level) :]) if min_level else None
    cur = await conn.execute(
        q("recent_logs"),
        {"host": host, "after_id": after_id, "limit": limit, "levels": levels, "since": since},
    )
    return [dict(r) for r in await cur.fetchall()]
