"""Human-readable output for the CLI: small aligned tables, no dependencies."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from control.models import Task
from control.tasktypes import STATES


def emit_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def id_list(ids: Sequence[int], most: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:most])
    return shown + (f" (+{len(ids) - most} more)" if len(ids) > most else "")


def print_status(snap: dict[str, Any]) -> None:
    q = snap["queue"]
    rows = [[t, *(c[s] for s in STATES)] for t, c in q["by_type"].items()]
    rows.append(["total", *(q["totals"][s] for s in STATES)])
    print(f"database: schema v{snap['database']['schema_version']}   at {snap['generated_at']}")
    print()
    print(table(["type", *STATES], rows))
    print()
    hosts = snap["hosts"]
    if not hosts:
        print("no hosts: declare them in inventory.yaml, or run `contentctl agent run`")
        return
    hrows = []
    for h in hosts:
        running = ", ".join(
            f"{r['type']}#{r['id']}"
            + (f" {r['progress'] * 100:.0f}%" if r["progress"] is not None else "")
            for r in h["running"]
        )
        load = h["load"] or {}
        hrows.append(
            [
                h["name"] + ("" if h["declared"] else " (undeclared)"),
                h["state"],
                "" if h["heartbeat_age_s"] is None else f"{h['heartbeat_age_s']:.0f}s",
                "" if "cpu_percent" not in load else f"{load['cpu_percent']:.0f}%",
                "" if "mem_percent" not in load else f"{load['mem_percent']:.0f}%",
                running,
                h["idle_reason"] or "",
            ]
        )
    print(table(["host", "state", "heartbeat", "cpu", "mem", "running", "idle"], hrows))


def print_tasks(tasks: Sequence[Task]) -> None:
    if not tasks:
        print("no tasks")
        return
    rows = [
        [
            t.id,
            t.type,
            t.display_state,
            t.priority,
            f"{t.attempts}/{t.max_attempts}",
            t.host or "",
            "" if t.progress is None else f"{t.progress * 100:.0f}%",
            t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            (t.error_message or "")[:60],
        ]
        for t in tasks
    ]
    print(
        table(
            ["id", "type", "state", "prio", "attempts", "host", "progress", "created", "error"],
            rows,
        )
    )


def print_task(t: Task) -> None:
    data = t.public()
    error = data.pop("error")
    for key, value in data.items():
        if isinstance(value, dict):
            value = json.dumps(value)
        print(f"{key:>17}: {'' if value is None else value}")
    if error:
        print(f"{'error':>17}: {error['type']}: {error['message']}")
        if error["traceback"]:
            print("traceback (tail):")
            print(error["traceback"])


def print_log(row: dict[str, Any], *, with_host: bool) -> None:
    ts = row["ts"].astimezone().strftime("%H:%M:%S")
    host = f"{row['host']} " if with_host else ""
    task = f"[task {row['task_id']}] " if row.get("task_id") else ""
    print(f"{ts} {host}{row['level']:<7} {task}{row['message']}")
