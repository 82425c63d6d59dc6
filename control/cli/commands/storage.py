"""`storage init` and `storage check`: the fleet's shared storage root, marked and watched."""

from __future__ import annotations

import argparse
import sys

from control.cli import output
from control.cli.commands.common import Session
from control.core import storage_health
from control.core.errors import EXIT_FAILED, EXIT_OK
from control.core.settings import storage_root
from control.head import status


async def cmd_storage_init(args: argparse.Namespace) -> int:
    s = Session(args)
    root = storage_root(s.inventory.storage_root)
    async with s.database() as conn:
        storage_id = await storage_health.init(conn, root, force=args.force)
    output.render(
        args,
        {"root": str(root), "storage_id": storage_id},
        text=f"{root}: marked as the fleet's storage ({storage_id})",
    )
    return EXIT_OK


async def cmd_storage_check(args: argparse.Namespace) -> int:
    """This machine's view of the storage root, and every host's from its heartbeats."""
    s = Session(args)
    root = storage_root(s.inventory.storage_root)
    async with s.database() as conn:
        expected = await storage_health.fleet_storage_id(conn)
        hosts = await status.hosts(conn, s.inventory)
    here = storage_health.check(root, expected)
    rows = [
        {
            "host": h.name,
            "state": h.state,
            "storage": None if h.storage is None else h.storage.to_json(),
            "disk_free_gb": h.load.get("disk_free_gb"),
        }
        for h in hosts
    ]
    bad = [h for h in hosts if h.storage_failing]
    if args.json:
        output.emit_json(
            {
                "root": str(root),
                "storage_id": expected,
                "here": here.to_json(),
                "hosts": rows,
            }
        )
    else:
        print(f"storage root {root}: " + ("ok" if here.ok else f"UNAVAILABLE: {here.error}"))
        print(f"fleet storage id: {expected or 'none (run `contentctl storage init`)'}")
        table_rows = [
            [
                h.name,
                h.state,
                "-" if h.storage is None else ("ok" if h.storage.ok else "UNAVAILABLE"),
                "" if r["disk_free_gb"] is None else f"{r['disk_free_gb']:.1f} GB",
                (h.storage and h.storage.error) or "",
            ]
            for h, r in zip(hosts, rows, strict=True)
        ]
        print(output.table(["host", "state", "storage", "free", "why"], table_rows))
    if bad and not args.json:
        print(f"{len(bad)} host(s) without storage", file=sys.stderr)
    if bad or not here.ok:
        return EXIT_FAILED
    return EXIT_OK
