"""`contentctl status`: one snapshot of the database, the queue and the fleet (docs/contract.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from control.core import fleet
from control.core.db import AsyncConn, schema_version
from control.core.inventory import Inventory
from control.core.queue import Queue
from control.core.tasktypes import STATES


async def snapshot(conn: AsyncConn, inventory: Inventory) -> dict[str, Any]:
    by_type = await Queue(conn).stats()
    totals = dict.fromkeys(STATES, 0)
    for counts in by_type.values():
        for state, n in counts.items():
            totals[state] += n
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {"reachable": True, "schema_version": str(await schema_version(conn))},
        "queue": {"by_type": dict(sorted(by_type.items())), "totals": totals},
        "hosts": await hosts(conn, inventory),
    }


async def hosts(conn: AsyncConn, inventory: Inventory) -> list[dict[str, Any]]:
    """Every host the inventory declares plus every host that has heartbeated, by name."""
    rows = {r["name"]: r for r in await fleet.hosts_rows(conn)}
    running: dict[str, list[dict[str, Any]]] = {}
    for t in await fleet.running_rows(conn):
        running.setdefault(str(t["host"]), []).append(
            {
                "id": t["id"],
                "type": t["type"],
                "progress": t["progress"],
                "stage": t["progress_stage"],
            }
        )
    out = []
    for name in sorted(set(rows) | set(inventory.hosts)):
        row = rows.get(name)
        spec = inventory.hosts.get(name)
        body: dict[str, Any] = dict(row["heartbeat"]) if row else {}
        stalled = {r.get("id") for r in body.get("running") or [] if r.get("stalled")}
        for task in running.get(name, []):
            task["stalled"] = task["id"] in stalled
        age = row["heartbeat_age_s"] if row else None
        state = fleet.host_state(
            row["agent_state"] if row else None, age, enabled=spec.enabled if spec else True
        )
        if spec is not None:
            enabled_tasks = list(spec.enabled_tasks)
        else:
            enabled_tasks = list(row["enabled_tasks"]) if row else []
        out.append(
            {
                "name": name,
                "address": spec.address if spec else (row["address"] if row else None),
                "state": state,
                "declared": spec is not None,
                "heartbeat_age_s": None if age is None else round(float(age), 1),
                "load": body.get("load", {}),
                "running": running.get(name, []),
                "enabled_tasks": enabled_tasks,
                "max_concurrent_tasks": spec.max_concurrent_tasks if spec else None,
                "idle_reason": _idle_reason(state, body),
                "idle_until": body.get("idle_until") if state == "online" else None,
                "counters": body.get("counters", {}),
                # the agent's view of the storage root (NAS mounted, marker, writable)
                "storage": body.get("storage") if state not in ("offline", "disabled") else None,
                "agent_version": row["agent_version"] if row else None,
                "code_hash": row["code_hash"] if row else None,
            }
        )
    return out


def _idle_reason(state: str, body: dict[str, Any]) -> str | None:
    if state in ("draining", "drained"):
        return state
    if state == "online":
        reason = body.get("idle_reason")
        return str(reason) if reason else None
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


def why_waiting(task_type: str, hosts: list[dict[str, Any]]) -> str | None:
    """Why claimable work of `task_type` is not being picked up, from `hosts()`; None when an
    online host that runs the type is idle or busy (it is on its way)."""
    able = [h for h in hosts if task_type in h["enabled_tasks"] and h["state"] != "disabled"]
    if not able:
        return (
            f"no host has {task_type} enabled: add it to a host's enabled_tasks in the "
            "inventory, or start an agent (`contentctl agent run`)"
        )
    said = []
    for h in able:
        reason = h["idle_reason"]
        if h["state"] == "online" and reason in (None, "no_work", "max_concurrency"):
            return None
        if h["state"] == "online":
            words = IDLE_WORDS.get(str(reason), str(reason))
            until = f" until {h['idle_until'][11:16]}" if h.get("idle_until") else ""
            said.append(f"{h['name']} {words}{until}")
        else:
            said.append(f"{h['name']} {h['state']}")
    return f"no online host can run {task_type} now: " + ", ".join(said)
