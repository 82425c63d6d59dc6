"""`prune`, `audit`, `metrics serve`, `alerts test|list`: months of operation."""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import UTC, datetime, timedelta

from control.cli import output
from control.cli.commands.common import Session
from control.core import audit, db, retention
from control.core.errors import EXIT_FAILED, EXIT_OK, UsageError
from control.core.settings import storage_root
from control.core.sql import q
from control.head import alerts, database, operations


async def cmd_prune(args: argparse.Namespace) -> int:
    s = Session(args)
    root = storage_root(s.inventory.storage_root)
    if not args.json:
        print("pruning..." if not args.dry_run else "counting what a prune would remove...")
    async with s.database() as conn:
        rep = await retention.prune(conn, s.inventory.retention, root, dry_run=args.dry_run)
    doc = rep.as_dict()
    doc["policy"] = retention.policy(s.inventory.retention)
    if args.json:
        output.emit_json(doc)
        return EXIT_FAILED if rep.errors else EXIT_OK
    verb = "would go" if args.dry_run else "removed"
    tasks = ", ".join(f"{n} {state}" for state, n in sorted(rep.tasks.items())) or "none"
    print(f"finished tasks {verb}: {tasks} (each folded into the daily rollup first)")
    print(
        f"rows {verb}: agent commands {rep.commands}, daily counters {rep.daily_counts}, "
        f"audit {rep.audit}, closed incidents {rep.incidents}"
    )
    files = ", ".join(f"{n} {kind}" for kind, n in sorted(rep.files.items())) or "none"
    freed = "would be freed" if args.dry_run else "freed"
    print(f"media files {verb}: {files} ({rep.bytes_freed / 1e6:.1f} MB {freed})")
    for err in rep.errors:
        print(f"  {err}")
    return EXIT_FAILED if rep.errors else EXIT_OK


async def cmd_audit(args: argparse.Namespace) -> int:
    s = Session(args)
    since = datetime.now(UTC) - timedelta(seconds=args.since) if args.since else None
    async with s.database() as conn:
        rows = await audit.recent(conn, since, args.limit)
    docs = [
        {
            "id": r["id"],
            "at": r["at"].isoformat(),
            "actor": r["actor"],
            "via": r["via"],
            "action": r["action"],
            "targets": r["targets"],
            "outcome": r["outcome"],
            "detail": r["detail"],
        }
        for r in rows
    ]
    output.render(
        args,
        docs,
        [
            ("when (UTC)", lambda d: d["at"][:19].replace("T", " ")),
            ("who", lambda d: d["actor"]),
            ("via", lambda d: d["via"]),
            ("action", lambda d: d["action"]),
            ("on", lambda d: " ".join(map(str, d["targets"]))[:40]),
            ("outcome", lambda d: d["outcome"][:50]),
        ],
        empty="no actions recorded" + (" in that time" if since else ""),
        rows=reversed(docs),  # oldest first: the newest ends next to the prompt
    )
    return EXIT_OK


async def cmd_alerts(args: argparse.Namespace) -> int:
    s = Session(args)
    if args.alerts_command == "test":
        hooks = alerts.config(s.inventory).get("webhooks") or []
        if not hooks:
            raise UsageError(
                "no webhooks: add `alerts: {webhooks: [{url: https://...}]}` to the inventory"
            )
        errors = await alerts.send_test(s.inventory)
        if args.json:
            output.emit_json({"webhooks": len(hooks), "errors": errors})
        else:
            print(f"test message sent to {len(hooks) - len(errors)} of {len(hooks)} webhook(s)")
            for e in errors:
                print(f"  {e}")
        return EXIT_FAILED if errors else EXIT_OK
    async with s.database() as conn:
        rows = await db.rows(conn, q("incidents_recent"), {"limit": args.limit})
    docs = [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()} for r in rows
    ]
    output.render(
        args,
        docs,
        [
            ("id", lambda d: d["id"]),
            ("state", lambda d: "open" if d["closed_at"] is None else "closed"),
            ("rule", lambda d: d["rule"]),
            ("subject", lambda d: d["subject"]),
            ("opened (UTC)", lambda d: (d["opened_at"] or "")[:19].replace("T", " ")),
            ("message", lambda d: d["message"][:60]),
        ],
        empty="no incidents",
    )
    return EXIT_OK


async def cmd_metrics_serve(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server
    from prometheus_client.registry import CollectorRegistry

    from control.head.metrics import FleetCollector

    s = Session(args)
    url = await asyncio.to_thread(database.resolve_url, s.target)
    # the schema is checked (and a fresh database migrated) before anything is served
    conn = await s.connect()
    await conn.close()
    registry = CollectorRegistry()
    collector = FleetCollector(url, s.inventory)
    registry.register(collector)
    try:
        server, thread = start_http_server(args.port, addr=args.listen, registry=registry)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.listen}:{args.port} ({exc.strerror}): choose --port"
        ) from None
    where = f"http://{args.listen}:{server.server_port}/metrics"
    duties = [d for d, on in (("alerts", not args.no_alerts), ("prune", not args.no_prune)) if on]
    print(f"serving metrics on {where}; head duties: {', '.join(duties) or 'none'}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await operations.duties(
            s.connect,
            s.inventory,
            storage_root(s.inventory.storage_root),
            stop,
            run_alerts=not args.no_alerts,
            run_prune=not args.no_prune,
        )
    finally:
        server.shutdown()
        thread.join(timeout=5)
        collector.close()
    return EXIT_OK
