"""`contentctl status`: one snapshot of the database, the queue and the fleet (docs/contract.md)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from control.core import fleet
from control.core.db import AsyncConn, schema_version
from control.core.inventory import HostSpec, Inventory
from control.core.queue import Queue, StatsMark
from control.core.readmodels import FleetSnapshot, HeartbeatBody, HostEntry, RunningTask
from control.core.tasktypes import STATES


async def snapshot(
    conn: AsyncConn, inventory: Inventory, view: HostsView | None = None
) -> FleetSnapshot:
    """The status snapshot; with a `view`, the hosts are read incrementally (the dashboard)."""
    by_type = await Queue(conn).stats(view.stats_mark if view else None)
    totals = dict.fromkeys(STATES, 0)
    for counts in by_type.values():
        for state, n in counts.items():
            totals[state] += n
    return FleetSnapshot(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        schema_version=str(await (view.schema(conn) if view else schema_version(conn))),
        by_type=dict(sorted(by_type.items())),
        totals=totals,
        hosts=tuple(await (view.hosts(conn, inventory) if view else hosts(conn, inventory))),
    )


async def hosts(conn: AsyncConn, inventory: Inventory) -> list[HostEntry]:
    """Every host the inventory declares plus every host that has heartbeated, by name."""
    rows = {r["name"]: r for r in await fleet.hosts_rows(conn)}
    return entries(rows, _by_host(await fleet.running_rows(conn)), inventory)


class HostsView:
    """The hosts of `hosts()`, read incrementally for a dashboard that asks every second.

    The first read is in full; after it, only the hosts whose beat was written since the
    newest beat seen (less MARGIN_S: a beat is stamped when its statement starts, and may
    commit a moment later; the beats already read in that window are left out by the server),
    and the running tasks of those whose beat reports other tasks than before. An agent writes
    its beat when what it reports changed (its running tasks and their progress, its state)
    and at least once a minute, so a host with news is re-read within a beat; the others
    cost nothing, their ages worked out from their beat times. An agent whose database session
    ended writes nothing: which sessions are gone is asked at every read (one short row). A
    full read every FULL_EVERY_S
    catches what no beat announces (a host forgotten, tasks taken back from a dead agent).
    """

    FULL_EVERY_S = 30.0
    MARGIN_S = 2.0

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._running: dict[str, tuple[RunningTask, ...]] = {}
        self._newest: datetime | None = None
        self._full_at = -self.FULL_EVERY_S
        self._server_at = (datetime.now(UTC), time.monotonic())
        self._schema: tuple[int, float] | None = None  # the schema version, and when read
        self.stats_mark = StatsMark()  # the queue's counts in one round trip after the first
        # each host's last entry and what it was built from (its row, its running tasks, its
        # inventory entry): an unchanged host's entry gets its new age in place, not rebuilt
        self._entries: dict[str, tuple[Any, Any, HostSpec | None, HostEntry]] = {}
        # for tests and benches: reads, and rows of hosts and of running tasks read
        self.reads = {"full": 0, "incremental": 0, "hosts_read": 0, "tasks_read": 0}

    async def schema(self, conn: AsyncConn) -> int:
        """The schema version, read again every FULL_EVERY_S (it moves with a migration)."""
        clock = time.monotonic()
        if self._schema is None or clock - self._schema[1] >= self.FULL_EVERY_S:
            self._schema = (await schema_version(conn), clock)
        return self._schema[0]

    async def hosts(self, conn: AsyncConn, inventory: Inventory) -> list[HostEntry]:
        clock = time.monotonic()
        if self._newest is None or clock - self._full_at >= self.FULL_EVERY_S:
            found = await fleet.hosts_rows(conn)
            self._rows = {r["name"]: r for r in found}
            tasks = await fleet.running_rows(conn)
            self._running = _by_host(tasks)
            self.reads["tasks_read"] += len(tasks)
            self._full_at = clock
            # the server's clock, read once per full read: between two, its time is worked
            # out from ours (a statement a second less; ages move with our clock)
            self._server_at = await fleet.server_now(conn), time.monotonic()
            self.reads["full"] += 1
        else:
            since = self._newest - timedelta(seconds=self.MARGIN_S)
            seen = {
                name: r["last_heartbeat_at"]
                for name, r in self._rows.items()
                if r["last_heartbeat_at"] is not None and r["last_heartbeat_at"] >= since
            }
            found = await fleet.hosts_beaten_since(conn, since, seen)
            # a host's running tasks are read again when its beat reports other ones (ids,
            # progress, stages: what an agent writes its beat for), or when it is new; a beat
            # that only says "alive" costs no read of its tasks (a host running hundreds of
            # them had them all read again at each of its beats)
            moved = [
                str(r["name"])
                for r in found
                if _reported(r) != _reported(self._rows.get(r["name"]))
            ]
            if moved:
                tasks = await fleet.running_rows(conn, moved)
                self.reads["tasks_read"] += len(tasks)
                running = _by_host(tasks)
                for name in moved:
                    self._running[name] = running.get(name, ())
            self._rows.update((r["name"], r) for r in found)
            # an agent whose session ended wrote nothing: ask which sessions are gone
            ended = await fleet.sessions_gone(conn)
            moved_on = [
                (name, r)
                for name, r in self._rows.items()
                if r.get("session_alive") is not None and r["session_alive"] == (name in ended)
            ]
            for name, r in moved_on:
                self._rows[name] = {**r, "session_alive": name not in ended}
            self.reads["incremental"] += 1
        self.reads["hosts_read"] += len(found)
        server_at, read_at = self._server_at
        now = server_at + timedelta(seconds=time.monotonic() - read_at)
        beats = [r["last_heartbeat_at"] for r in self._rows.values() if r["last_heartbeat_at"]]
        if beats:
            self._newest = max(beats)
        elif self._newest is None:
            self._newest = now
        for r in self._rows.values():
            at = r["last_heartbeat_at"]
            r["heartbeat_age_s"] = None if at is None else (now - at).total_seconds()
        out = []
        for name in sorted(set(self._rows) | set(inventory.hosts)):
            row = self._rows.get(name)
            read = self._running.get(name)
            spec = inventory.hosts.get(name)
            entry = None
            kept = self._entries.get(name)
            if kept is not None and kept[0] is row and kept[1] is read and kept[2] is spec:
                entry = _aged(kept[3], row, spec)
            if entry is None:
                entry = _entry(name, row, read or (), spec)
            self._entries[name] = (row, read, spec, entry)
            out.append(entry)
        for gone in set(self._entries) - {e.name for e in out}:
            del self._entries[gone]
        return out


_NEW = object()  # a host not read before: its tasks are read


def _reported(row: dict[str, Any] | None) -> Any:
    """The running tasks a host's beat reports (None when it reports none, as older agents)."""
    if row is None:
        return _NEW
    return (row["heartbeat"] or {}).get("running")


def _aged(entry: HostEntry, row: dict[str, Any] | None, spec: HostSpec | None) -> HostEntry | None:
    """The entry of an unchanged host with its new heartbeat age (the same entry when its age,
    to a tenth of a second, has not moved). None when the age moved it to another state
    (stale, offline), which changes more than the age."""
    age = row["heartbeat_age_s"] if row else None
    state = fleet.row_state(row, enabled=spec.enabled if spec else True)
    if state != entry.state:
        return None
    aged = None if age is None else round(float(age), 1)
    return entry if aged == entry.heartbeat_age_s else replace(entry, heartbeat_age_s=aged)


def _by_host(running: list[dict[str, Any]]) -> dict[str, tuple[RunningTask, ...]]:
    by_host: dict[str, list[RunningTask]] = {}
    for t in running:  # typed by their columns (bigint, text, real, text)
        by_host.setdefault(t["host"], []).append(
            # not stalled, unless the host's beat says so (_entry)
            RunningTask(t["id"], t["type"], t["progress"], t["progress_stage"])
        )
    return {host: tuple(tasks) for host, tasks in by_host.items()}


def entries(
    rows: dict[str, dict[str, Any]],
    running: dict[str, tuple[RunningTask, ...]],
    inventory: Inventory,
) -> list[HostEntry]:
    """The hosts' entries of the snapshot (docs/contract.md) from their rows and running
    tasks; the inventory's hosts that never beat are there too."""
    return [
        _entry(name, rows.get(name), running.get(name, ()), inventory.hosts.get(name))
        for name in sorted(set(rows) | set(inventory.hosts))
    ]


def _entry(
    name: str,
    row: dict[str, Any] | None,
    running: tuple[RunningTask, ...],
    spec: HostSpec | None,
) -> HostEntry:
    """One host's entry: the one place a host's row, its running tasks (from the tasks table;
    those its beat reports stalled are marked) and its inventory entry meet."""
    body = HeartbeatBody.from_json(row["heartbeat"] if row else None)
    stalled = body.stalled_ids
    if stalled:
        running = tuple(replace(t, stalled=t.id in stalled) for t in running)
    age = row["heartbeat_age_s"] if row else None
    state = fleet.row_state(row, enabled=spec.enabled if spec else True)
    if spec is not None:
        enabled_tasks = tuple(spec.enabled_tasks)
    else:
        enabled_tasks = tuple(row["enabled_tasks"]) if row else ()
    return HostEntry(
        name=name,
        address=spec.address if spec else (row["address"] if row else None),
        state=state,
        declared=spec is not None,
        heartbeat_age_s=None if age is None else round(float(age), 1),
        last_heartbeat_at=_iso(row["last_heartbeat_at"]) if row else None,
        # the agent's database session lives (None: it keeps no session key, or never beat)
        session_alive=row.get("session_alive") if row else None,
        load=body.load,
        running=running,
        enabled_tasks=enabled_tasks,
        max_concurrent_tasks=spec.max_concurrent_tasks if spec else None,
        idle_reason=_idle_reason(state, body),
        idle_until=body.idle_until if state == "online" else None,
        counters=body.counters,
        # the agent's view of the storage root (NAS mounted, marker, writable)
        storage=body.storage if state not in ("offline", "disabled") else None,
        agent_version=row["agent_version"] if row else None,
        code_hash=row["code_hash"] if row else None,
        # how its agent's previous run ended: start, operator, crash or reboot (agent/restarts)
        last_restart=body.last_restart,
        agent_state=row["agent_state"] if row else None,
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _idle_reason(state: str, body: HeartbeatBody) -> str | None:
    if state in ("draining", "drained"):
        return state
    if state == "online":
        return body.idle_reason or None
    return None


IDLE_WORDS = {
    "no_work": "idle",
    "cooldown": "in cooldown",
    "outside_window": "outside its window",
    "daily_limit": "at its daily limit",
    "draining": "draining",
    "drained": "drained",
    "max_concurrency": "busy",
}


def why_waiting(task_type: str, hosts: Sequence[HostEntry]) -> str | None:
    """Why claimable work of `task_type` is not being picked up, from `hosts()`; None when an
    online host that runs the type is idle or busy (it is on its way)."""
    able = [h for h in hosts if task_type in h.enabled_tasks and h.state != "disabled"]
    if not able:
        return (
            f"no host has {task_type} enabled: add it to a host's enabled_tasks in the "
            "inventory, or start an agent (`contentctl agent run`)"
        )
    said = []
    for h in able:
        reason = h.idle_reason
        if h.state == "online" and reason in (None, "no_work", "max_concurrency"):
            return None
        if h.state == "online":
            words = IDLE_WORDS.get(str(reason), str(reason))
            until = f" until {h.idle_until[11:16]}" if h.idle_until else ""
            said.append(f"{h.name} {words}{until}")
        else:
            said.append(f"{h.name} {h.state}")
    return f"no online host can run {task_type} now: " + ", ".join(said)
