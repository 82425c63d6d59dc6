"""inventory check | import, provision, rollout."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control.cli import output
from control.cli.commands.common import Session
from control.core import db, fleet, tasktypes
from control.core import inventory as inv_mod
from control.core.errors import EXIT_FAILED, EXIT_OK, UsageError
from control.core.inventory import HostSpec
from control.core.inventory import load as load_inventory
from control.core.redact import scrub
from control.core.settings import inventory_path
from control.head import agents, dbserve, legacy
from provisioning import session
from provisioning.provision import HostReport, Step
from provisioning.session import ssh_for
from provisioning.ssh import fan_out

if TYPE_CHECKING:
    from provisioning.ssh import SSH

log = logging.getLogger("contentctl")


async def cmd_inventory(args: argparse.Namespace) -> int:
    if args.inventory_command == "import":
        source = Path(args.legacy).expanduser()
        data, notes = legacy.convert(source)
        text = legacy.render(data, source)
        inv_mod.parse(text, Path(args.output or "imported.yaml"))  # what we write must load
        if args.output:
            out = Path(args.output).expanduser()
            if out.exists() and not args.force:
                raise UsageError(f"{out} exists: choose another --output or add --force")
            out.write_text(text)
            print(f"wrote {out}: {len(data['hosts'])} host(s)", file=sys.stderr)
        else:
            sys.stdout.write(text)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        return EXIT_OK
    path = inventory_path(getattr(args, "inventory", None))
    if path is None:
        raise UsageError(
            "no inventory: create ./inventory.yaml, set CONTENTCTL_INVENTORY or give --inventory"
        )
    inv = load_inventory(path).use()
    enabled = [h for h in inv.hosts.values() if h.enabled]
    by_type: dict[str, list[str]] = {}
    for h in enabled:
        for t in h.enabled_tasks:
            by_type.setdefault(t, []).append(h.name)
    if getattr(args, "json", False):
        output.emit_json(
            {
                "path": str(path),
                "ok": True,
                "hosts": len(inv.hosts),
                "enabled": len(enabled),
                "by_type": {t: by_type.get(t, []) for t in tasktypes.known()},
                "database": scrub(inv.database) if inv.database else None,
                "storage_root": inv.storage_root,
            }
        )
        return EXIT_OK
    print(f"{path}: ok, {len(inv.hosts)} host(s), {len(enabled)} enabled")
    for t in tasktypes.known():
        names = by_type.get(t, [])
        print(f"  {t:18} {len(names):3} host(s)" + (f": {', '.join(names[:6])}" if names else ""))
    print(f"  database: {scrub(inv.database) if inv.database else 'embedded'}")
    print(f"  storage_root: {inv.storage_root or '$CONTENTCTL_HOME/storage'}")
    return EXIT_OK


def select_hosts(s: Session, names: list[str], every: bool) -> list[Any]:
    if every and names:
        raise UsageError("name hosts or give --all, not both")
    if every:
        hosts = [h for h in s.inventory.hosts.values() if h.enabled and h.transport == "ssh"]
    else:
        hosts = []
        for name in dict.fromkeys(names):
            spec = s.inventory.host(name)
            if spec is None:
                raise UsageError(
                    f"unknown host {name!r}: add it to {s.inventory.path or 'the inventory'}"
                )
            hosts.append(spec)
    if not hosts and every:
        raise UsageError(
            f"no enabled host with transport: ssh in {s.inventory.path or 'the inventory'}: "
            "declare one (address, user) to provision it"
        )
    if not hosts:
        raise UsageError("no hosts: name some, or give --all (hosts with transport: ssh)")
    local = [h.name for h in hosts if h.transport != "ssh"]
    if local:
        raise UsageError(f"host {local[0]!r} has transport: local; provisioning works over SSH")
    return hosts


def ssh_session(s: Session, args: argparse.Namespace) -> SSH:
    return ssh_for(s.inventory, bool(getattr(args, "accept_new_host_keys", False)))


async def _provisioner(s: Session, args: argparse.Namespace, conn: db.AsyncConn) -> Any:
    """A Provisioner for this command, printing each step as it happens."""

    def show(host: str, step: Step) -> None:
        if getattr(args, "json", False):
            return  # the whole report comes at the end, as one JSON document
        first, *more = step.detail.splitlines() or [""]
        print(f"{host:16} {step.name:15} {step.status:13} {step.seconds:6.1f}s  {first}")
        for line in more:  # a dry run's file or diff
            print(f"{'':16}   {line}")
        sys.stdout.flush()

    interactive = not getattr(args, "yes", False) and sys.stdin.isatty()

    dry_run = bool(getattr(args, "dry_run", False))
    if dry_run:  # a plan changes nothing, and plans even before `db serve`
        url = await asyncio.to_thread(dbserve.planned_url, s.target)
        if "NOT-SERVED-YET" in url:
            print(
                "note: the embedded database listens on this machine only: provisioning will "
                "need `contentctl db serve` first",
                file=sys.stderr,
            )
    else:
        url = await asyncio.to_thread(dbserve.agent_url, s.target, True)

    async def host_url(host: HostSpec) -> str:  # each host its own role (a dry run: none made)
        if dry_run:
            return await asyncio.to_thread(dbserve.planned_url, s.target, host.name)
        return await asyncio.to_thread(dbserve.host_agent_url, s.target, host.name)

    return await session.build(
        s.inventory,
        url,
        conn,
        host_url=host_url,
        dry_run=bool(getattr(args, "dry_run", False)),
        accept_new=bool(getattr(args, "accept_new_host_keys", False)),
        source=Path(args.source).expanduser().resolve() if args.source else None,
        ask_nas_password=getpass.getpass if interactive else None,
        on_step=show,
    )


def _report_json(outcomes: list[Any], dry_run: bool) -> int:
    docs = []
    for o in outcomes:
        steps = [] if not o.ok else [dataclasses.asdict(st) for st in o.value.steps]
        docs.append(
            {
                "host": o.host,
                "ok": o.ok and not o.value.failed,
                "changed": bool(o.ok and o.value.changed),
                "dry_run": dry_run,
                "error": o.error,
                "seconds": round(o.seconds, 2),
                "steps": steps,
            }
        )
    output.emit_json(docs)
    return sum(not d["ok"] for d in docs)


def _report(outcomes: list[Any], dry_run: bool, as_json: bool = False) -> int:
    if as_json:
        return _report_json(outcomes, dry_run)
    failed = 0
    for o in outcomes:
        if not o.ok:
            failed += 1
            print(f"{o.host}: {o.error}", file=sys.stderr)
        elif o.value.failed:
            failed += 1
            step = next(st for st in o.value.steps if st.status == "failed")
            print(f"{o.host}: failed at {step.name}: {step.detail}", file=sys.stderr)
        else:
            verdict = (
                "would change"
                if dry_run and o.value.changed
                else ("changed" if o.value.changed else "no changes")
            )
            print(f"{o.host}: {verdict} ({o.seconds:.1f}s)")
    return failed


async def cmd_provision(args: argparse.Namespace) -> int:
    s = Session(args)
    hosts = select_hosts(s, args.hosts, args.all)
    if not args.yes and not args.dry_run and sys.stdin.isatty():
        names = ", ".join(h.name for h in hosts)
        if input(f"provision {names}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing done")
            return EXIT_FAILED
    async with s.database() as conn:
        prov = await _provisioner(s, args, conn)
        try:
            outcomes = await fan_out(hosts, prov.provision, parallel=args.parallel)
        finally:
            await prov.ssh.close()
    return EXIT_FAILED if _report(outcomes, args.dry_run, args.json) else EXIT_OK


async def cmd_rollout(args: argparse.Namespace) -> int:
    """Per host: drain, sync and update, restart, wait for the new code's heartbeat, undrain;
    `--parallel` hosts at a time; stop at the first host that fails."""
    s = Session(args)
    hosts = select_hosts(s, args.hosts, args.all)
    conn = await s.connect()
    prov = await _provisioner(s, args, conn)

    async def one(host: Any) -> HostReport:
        report = HostReport(host.name)
        rows = {r["name"]: r for r in await fleet.hosts_rows(conn)}
        row = rows.get(host.name)
        online = row is not None and fleet.row_state(row) != "offline"
        if online:
            t0 = time.monotonic()
            [res] = await agents.send_and_wait(conn, [host.name], "drain", {}, timeout_s=30)
            deadline = time.monotonic() + args.drain_timeout
            drained = False
            while res.acknowledged and time.monotonic() < deadline:
                now = {r["name"]: r for r in await fleet.hosts_rows(conn)}.get(host.name)
                if now is not None and now["agent_state"] == "drained":
                    drained = True
                    break
                await asyncio.sleep(0.5)
            step = Step(
                "drain",
                "ok" if drained else "failed",
                "drained" if drained else "not drained in time: its tasks keep running",
                round(time.monotonic() - t0, 2),
            )
            report.steps.append(step)
            if prov.on_step:
                prov.on_step(host.name, step)
            if not drained:
                return report
        report.steps += (await prov.provision(host)).steps
        if not report.failed:
            t0 = time.monotonic()
            [res] = await agents.send_and_wait(conn, [host.name], "undrain", {}, timeout_s=30)
            step = Step(
                "undrain",
                "ok" if res.acknowledged else "failed",
                res.outcome or "no acknowledgement",
                round(time.monotonic() - t0, 2),
            )
            report.steps.append(step)
            if prov.on_step:
                prov.on_step(host.name, step)
        return report

    failed = 0
    try:
        for start in range(0, len(hosts), args.parallel):
            batch = hosts[start : start + args.parallel]
            failed = _report(await fan_out(batch, one, parallel=args.parallel), False, args.json)
            if failed:
                rest = [h.name for h in hosts[start + args.parallel :]]
                if rest:
                    print(f"rollout stopped; not touched: {', '.join(rest)}", file=sys.stderr)
                break
    finally:
        await prov.ssh.close()
        await conn.close()
    return EXIT_FAILED if failed else EXIT_OK
