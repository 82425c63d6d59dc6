"""Alerts without a monitoring stack: the inventory's `alerts:` rules are evaluated against the
database; an incident opens when a condition starts (announced once to every webhook) and
closes when it ends (one recovery). State lives in alert_incidents, so a restarted head does
not announce again, and the evaluation runs under a transaction-level advisory lock, so two
evaluating processes (two heads) open each incident once; delivery takes incidents with
FOR UPDATE SKIP LOCKED, so no incident is sent twice. A failed delivery retries with backoff.

Webhook bodies: `json` (generic: status, rule, subject, message, opened_at, closed_at),
`ntfy` (plain text with Title and Tags headers), `slack` ({"text": ...} with <, >, & escaped
as Slack asks, so a host name cannot mention @channel)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from control.core import db, fleet
from control.core.inventory import Inventory
from control.core.readmodels import HeartbeatBody
from control.core.redact import scrub, scrub_value
from control.core.sql import q
from control.core.urls import open_checked
from control.head import status

log = logging.getLogger(__name__)

LOCK_KEY = 0x0C0A1E27  # pg_advisory_xact_lock key of the evaluation
T = TypeVar("T")
DELIVERY_TIMEOUT_S = 10.0
BACKOFF_MIN_S = 5.0
BACKOFF_MAX_S = 600.0
DEFAULTS: dict[str, Any] = {
    "host_offline_minutes": 5,
    "task_stalled": True,
    "media_failed": True,
    "queue_age_minutes": 60,
    "storage_unavailable": True,
    "every_s": 30,
}


@dataclass(frozen=True)
class Condition:
    rule: str
    subject: str
    message: str

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"


def config(inventory: Inventory) -> dict[str, Any]:
    return {**DEFAULTS, **inventory.alerts}


async def conditions(conn: db.AsyncConn, inventory: Inventory) -> list[Condition]:
    """What is wrong right now, by the configured rules."""
    cfg = config(inventory)
    found: list[Condition] = []
    offline_s = float(cfg["host_offline_minutes"]) * 60
    beats = {str(r["name"]): r for r in await fleet.hosts_rows(conn)}
    for h in status.entries(beats, {}, inventory):
        name = h.name
        if name not in beats or h.state == "disabled":  # never beat, or switched off
            continue
        if h.silent_for(offline_s):
            age = h.heartbeat_age_s or 0.0
            found.append(
                Condition("host_offline", name, f"host {name} silent for {age / 60:.1f} min")
            )
            continue
        beat = HeartbeatBody.from_json(beats[name]["heartbeat"])
        if cfg["task_stalled"]:
            for task in beat.running:
                if task.stalled:
                    found.append(
                        Condition(
                            "task_stalled",
                            str(task.id),
                            f"task {task.id} ({task.type}) on {name} has made no progress",
                        )
                    )
        if cfg["storage_unavailable"] and beat.storage is not None and not beat.storage.ok:
            found.append(
                Condition(
                    "storage_unavailable",
                    name,
                    f"storage unavailable on {name}: {beat.storage.error or 'unknown'}",
                )
            )
    if cfg["media_failed"]:
        for r in await db.rows(conn, q("alert_media_failed")):
            found.append(
                Condition(
                    "media_failed",
                    str(r["id"]),
                    f"media {r['id']} ({r['title'] or r['source']}) failed: "
                    f"{_line(r['error_message'] or 'no message')}",
                )
            )
    age_s = float(cfg["queue_age_minutes"]) * 60
    for r in await db.rows(conn, q("alert_queue_age"), {"age_s": age_s}):
        found.append(
            Condition(
                "queue_age",
                str(r["type"]),
                f"{r['type']}: the oldest queued task has waited {float(r['age_s']) / 60:.0f} min",
            )
        )
    return found


async def evaluate(conn: db.AsyncConn, inventory: Inventory) -> dict[str, int] | None:
    """Open incidents for new conditions and close those that ended; None when another
    process is evaluating right now."""
    async with conn.transaction():
        got = await db.row(
            conn, "SELECT pg_try_advisory_xact_lock(%(key)s) AS ok", {"key": LOCK_KEY}
        )
        if not got or not got["ok"]:
            return None
        now = await conditions(conn, inventory)
        opened = 0
        for c in now:
            rows = await db.rows(
                conn,
                q("incident_open"),
                {"key": c.key, "rule": c.rule, "subject": c.subject, "message": scrub(c.message)},
            )
            opened += len(rows)
        closed = await db.rows(conn, q("incident_close"), {"keys": [c.key for c in now]})
    return {"open": len(now), "opened": opened, "closed": len(closed)}


DELIVERY_BATCH = 50  # incidents taken at once; their hooks are called concurrently


def hook_id(hook: dict[str, Any]) -> str:
    """A hook's name in the delivery records: a digest of its URL (which may carry a token)."""
    return hashlib.sha256(str(hook["url"]).encode()).hexdigest()[:16]


async def deliver(conn: db.AsyncConn, inventory: Inventory) -> int:
    """Send what is due (new incidents, recoveries) to every webhook, each hook on its own:
    concurrently, with its own backoff, never again to a hook that took it. An incident is
    fired (recovered) once every hook took it. With no webhook configured, incidents wait and
    are delivered once one is. Returns how many deliveries were made."""
    hooks = {hook_id(h): h for h in config(inventory).get("webhooks") or []}
    if not hooks:
        return 0
    sent = 0
    async with conn.transaction():
        rows = await db.rows(conn, q("incidents_due"), {"limit": DELIVERY_BATCH})
        if not rows:
            return 0
        done = {
            (r["incident_id"], r["hook"], r["status"]): r
            for r in await db.rows(conn, q("deliveries_of"), {"ids": [r["id"] for r in rows]})
        }
        now = datetime.now(UTC)
        jobs: list[tuple[dict[str, Any], str, str]] = []
        for row in rows:
            status = _status(row)
            if status == "silent":  # ended before it was announced: nothing to say
                await conn.execute(q("incident_sent"), {"id": row["id"], "status": status})
                continue
            for hid in hooks:
                d = done.get((row["id"], hid, status))
                if d is None or (d["delivered_at"] is None and d["next_try_at"] <= now):
                    jobs.append((row, hid, status))
        results = await asyncio.gather(
            *(_in_daemon_thread(_post_one, hooks[hid], _message(row, st)) for row, hid, st in jobs)
        )
        for (row, hid, status), error in zip(jobs, results, strict=True):
            params = {"id": row["id"], "hook": hid, "status": status}
            if error is None:
                await conn.execute(q("delivery_done"), params)
                sent += 1
            else:
                log.warning("alert %s not delivered to %s", row["key"], error)
                await conn.execute(
                    q("delivery_failed"),
                    {**params, "delay_s": BACKOFF_MIN_S, "max_s": BACKOFF_MAX_S, "error": error},
                )
        took: dict[tuple[int, str], set[str]] = {}
        for r in await db.rows(conn, q("deliveries_of"), {"ids": [r["id"] for r in rows]}):
            if r["delivered_at"] is not None:
                took.setdefault((r["incident_id"], r["status"]), set()).add(r["hook"])
        for row in rows:
            status = _status(row)
            if status == "silent":
                continue
            if set(hooks) <= took.get((row["id"], status), set()):
                await conn.execute(q("incident_sent"), {"id": row["id"], "status": status})
            else:
                errors = [e for (r, _, _), e in zip(jobs, results, strict=True)
                          if r["id"] == row["id"] and e]  # fmt: skip
                await conn.execute(
                    q("incident_wait"), {"id": row["id"], "error": "; ".join(errors)[:500]}
                )
    return sent


def _status(row: dict[str, Any]) -> str:
    if row["closed_at"] is None:
        return "firing"
    return "resolved" if row["fired_at"] is not None else "silent"


async def _in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a daemon thread: a hook that hangs (up to DELIVERY_TIMEOUT_S) never holds
    a stopping process, as the event loop's executor would at exit."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            value = fn(*args)
        except BaseException as exc:  # handed to the awaiting task
            loop.call_soon_threadsafe(_settle, fut, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, fut, value, None)

    threading.Thread(target=run, name="webhook", daemon=True).start()
    return await fut


def _settle(fut: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


def _post_one(hook: dict[str, Any], msg: dict[str, Any]) -> str | None:
    """Deliver to one hook; the error as a line (naming the hook's host only), or None."""
    try:
        _post(hook, msg)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        where = urlsplit(hook["url"]).hostname or "webhook"
        return f"{where}: {_line(str(getattr(exc, 'reason', exc)))}"
    return None


def _message(row: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "status": status,
        "rule": row["rule"],
        "subject": row["subject"],
        "message": row["message"],
        "opened_at": row["opened_at"].isoformat(),
        "closed_at": row["closed_at"].isoformat() if row["closed_at"] else None,
    }


def _post_all(hooks: list[dict[str, Any]], msg: dict[str, Any]) -> list[str]:
    return [e for e in (_post_one(h, msg) for h in hooks) if e is not None]


def _line(text: str) -> str:
    return scrub((text.strip().splitlines() or [""])[0][:300])


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _post(hook: dict[str, Any], msg: dict[str, Any]) -> None:
    msg = scrub_value(msg)  # an alert quotes task errors and names: never a secret in a body
    fmt = hook.get("format", "json")
    word = "RESOLVED" if msg["status"] == "resolved" else "ALERT"
    headers = {"User-Agent": "contentctl"}
    if fmt == "ntfy":
        body = msg["message"].encode()
        headers["Title"] = f"contentctl {word}: {msg['rule']}".encode("ascii", "replace").decode()
        headers["Tags"] = "white_check_mark" if msg["status"] == "resolved" else "warning"
        headers["Content-Type"] = "text/plain; charset=utf-8"
    elif fmt == "slack":
        body = json.dumps({"text": _slack_escape(f"{word} {msg['message']}")}).encode()
        headers["Content-Type"] = "application/json"
    else:
        body = json.dumps(msg).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(hook["url"], data=body, headers=headers, method="POST")
    # a webhook may live on the operator's network, but never at a link-local (metadata)
    # address, on the first hop or any redirect's
    with open_checked(req, timeout=DELIVERY_TIMEOUT_S, allow_private=True) as resp:
        if resp.status >= 300:
            raise ValueError(f"HTTP {resp.status}")


async def send_test(inventory: Inventory) -> list[str]:
    """One test message to every webhook; the errors (empty when all took it)."""
    hooks = list(config(inventory).get("webhooks") or [])
    msg = {
        "status": "test",
        "rule": "test",
        "subject": "contentctl",
        "message": "contentctl alerts test: this webhook receives the fleet's alerts",
        "opened_at": datetime.now(UTC).isoformat(),
        "closed_at": None,
    }
    return await asyncio.to_thread(_post_all, hooks, msg)
