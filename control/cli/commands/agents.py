"""agent run, agent drain|undrain|restart|stop|start, logs."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from control.cli import output
from control.cli.commands.common import Session
from control.cli.commands.fleet import select_hosts, ssh_session
from control.core import fleet
from control.core.errors import EXIT_FAILED, EXIT_OK, UsageError
from control.head import agents
from provisioning.session import agent_over_ssh
from provisioning.ssh import fan_out

log = logging.getLogger("contentctl")


async def cmd_agent_command(args: argparse.Namespace) -> int:
    command = args.agent_command
    s = Session(args)
    async with s.database() as conn:
        known = {r["name"]: r for r in await fleet.hosts_rows(conn)}
        if args.all:
            hosts = sorted(set(known) | set(s.inventory.hosts))
        else:
            hosts = list(dict.fromkeys(args.hosts))
            unknown = [h for h in hosts if h not in known and h not in s.inventory.hosts]
            if unknown:
                raise UsageError(
                    f"unknown host {unknown[0]!r}: not in the inventory and never heartbeated "
                    "(see `contentctl status`)"
                )
        if not hosts:
            raise UsageError("no hosts: name some, or declare them in the inventory")
        online: list[str] = []
        offline: list[str] = []
        for h in hosts:
            row = known.get(h)
            state = fleet.row_state(row)
            (offline if state == "offline" else online).append(h)
        cmd_args = {"deadline_s": args.deadline} if getattr(args, "deadline", None) else {}
        results = (
            await agents.send_and_wait(conn, online, command, cmd_args, timeout_s=args.timeout)
            if online
            else []
        )
        if command in ("drain", "undrain"):
            # Remembered for when they come back: a drained host starts drained.
            for h in offline:
                await fleet.send_command(conn, h, command, cmd_args)
    # stop/restart of an agent that is not answering through the database: over SSH
    unanswered = [r.host for r in results if not r.acknowledged] + offline
    over_ssh = {}
    if command in ("stop", "restart"):
        over_ssh = await _agents_over_ssh(s, args, command, unanswered)
    # one result per host: {host, ok, outcome, via}, printed or given as JSON
    said: list[dict[str, Any]] = []
    for r in results:
        if r.acknowledged:
            said.append({"host": r.host, "ok": True, "outcome": r.outcome, "via": "database"})
        elif r.host in over_ssh:
            said.append(_ssh_result(r.host, over_ssh[r.host]))
        else:
            said.append(
                {
                    "host": r.host,
                    "ok": False,
                    "via": "database",
                    "outcome": f"no acknowledgement within {args.timeout:g} s: is its agent "
                    "running and reaching the database? (contentctl status)",
                }
            )
    for h in offline:
        if command in ("drain", "undrain"):
            said.append(
                {
                    "host": h,
                    "ok": True,
                    "via": "database",
                    "outcome": f"offline; it will start {command}ed",
                }
            )
        elif h in over_ssh:
            said.append(_ssh_result(h, over_ssh[h]))
        else:
            # named on purpose and nothing happened: a failure; with --all, a note
            said.append(
                {
                    "host": h,
                    "ok": bool(args.all),
                    "via": None,
                    "outcome": f"offline, skipped (no agent to {command})",
                }
            )
    failed = sum(not d["ok"] for d in said)
    if args.json:
        output.emit_json(said)
    else:
        for d in said:
            line = f"{d['host']}: {d['outcome']}"
            print(line, file=sys.stdout if d["ok"] and "skipped" not in line else sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


async def _agents_over_ssh(
    s: Session, args: argparse.Namespace, command: str, names: list[str]
) -> dict[str, Any]:
    """Hosts with `transport: ssh` among `names`, handled over SSH: name -> Outcome."""
    hosts = [
        h for h in (s.inventory.host(n) for n in names) if h is not None and h.transport == "ssh"
    ]
    if not hosts:
        return {}

    ssh = ssh_session(s, args)
    try:
        outcomes = await fan_out(hosts, lambda h: agent_over_ssh(ssh, h, command))
    finally:
        await ssh.close()
    return {o.host: o for o in outcomes}


def _ssh_result(host: str, outcome: Any) -> dict[str, Any]:
    if outcome.ok:
        text = f"not answering through the database; over SSH: {outcome.value}"
        return {"host": host, "ok": True, "via": "ssh", "outcome": text}
    return {"host": host, "ok": False, "via": "ssh", "outcome": outcome.error}


async def cmd_logs(args: argparse.Namespace) -> int:
    s = Session(args)
    host = None if args.host == "all" else args.host
    since = datetime.now(UTC) - timedelta(seconds=args.since) if args.since else None
    filters = {"min_level": args.level, "since": since}
    async with s.database() as conn:
        rows = await fleet.recent_logs(conn, host, limit=args.lines, **filters)
        if host is not None and not rows and host not in s.inventory.hosts:
            known = {r["name"] for r in await fleet.hosts_rows(conn)}
            if host not in known:
                raise UsageError(f"unknown host {host!r}: see `contentctl status`")
        last = 0
        while True:
            for r in rows:
                if args.json:  # JSON lines: one object a line, as it arrives
                    print(json.dumps(output.log_doc(r)))
                else:
                    output.print_log(r, with_host=host is None)
                last = max(last, int(r["id"]))
            sys.stdout.flush()
            if not args.follow:
                return EXIT_OK
            await asyncio.sleep(0.5)
            rows = await fleet.recent_logs(conn, host, after_id=last, limit=1000, **filters)


async def cmd_agent_ssh(args: argparse.Namespace) -> int:
    """`agent start`: the agent process over SSH."""

    s = Session(args)
    hosts = select_hosts(s, args.hosts, args.all)
    ssh = ssh_session(s, args)
    try:
        outcomes = await fan_out(
            hosts, lambda h: agent_over_ssh(ssh, h, "start"), parallel=args.parallel
        )
    finally:
        await ssh.close()
    if args.json:
        output.emit_json(
            [
                {"host": o.host, "ok": o.ok, "outcome": o.value if o.ok else o.error}
                for o in outcomes
            ]
        )
    for o in outcomes if not args.json else []:
        if o.ok:
            print(f"{o.host}: {o.value}")
        else:
            print(f"{o.host}: {o.error}", file=sys.stderr)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILED


async def cmd_agent_forget(args: argparse.Namespace) -> int:
    s = Session(args)
    async with s.database() as conn:
        await agents.forget(conn, s.inventory, args.host)
    output.render(
        args,
        {"host": args.host, "forgotten": True},
        text=f"{args.host}: forgotten (its finished tasks keep its name)",
    )
    return EXIT_OK
