"""db migrate | serve | url | stop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from control.cli import output
from control.cli.commands.common import Session
from control.core import db, names
from control.core.errors import EXIT_OK, UsageError
from control.core.settings import state_dir
from control.head import database, dbserve
from control.head.embedded import EmbeddedServer

log = logging.getLogger("contentctl")


async def cmd_db_migrate(args: argparse.Namespace) -> int:
    s = Session(args)
    conn = await db.connect(await asyncio.to_thread(database.resolve_url, s.target))
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
    s = Session(args)
    if not s.target.embedded:
        raise UsageError(
            "db serve manages the embedded server; this command points at an external one "
            f"({db.redact(s.target.url or '')}): unset --db / CONTENTCTL_DATABASE_URL"
        )
    url, changes = await asyncio.to_thread(dbserve.serve, args.listen, args.port, args.advertise)
    print(f"embedded database listening on {args.listen or '*'}:{args.port} (scram-sha-256)")
    for change in changes:
        print(change)
    print(
        f"agents connect to {url} as their own role, agent_<host>, made by `contentctl "
        "provision` (or `contentctl db url --host NAME` for an agent set up by hand)"
    )
    return EXIT_OK


async def cmd_db_url(args: argparse.Namespace) -> int:
    s = Session(args)
    if args.host is not None:
        names.host_name(args.host)
    url = await asyncio.to_thread(dbserve.agent_url, s.target, args.show_password, args.host)
    if args.show_password:
        output.print_secret(url)  # asked for: past the output's redaction
    else:
        print(url)
    return EXIT_OK


async def cmd_db_stop(args: argparse.Namespace) -> int:
    if not Session(args).target.embedded:
        raise UsageError(
            "db stop stops the embedded server; this command points at an external one"
        )
    stopped = await asyncio.to_thread(EmbeddedServer(state_dir()).stop, on_purpose=True)
    print("embedded database stopped" if stopped else "embedded database was not running")
    print("it stays stopped until `contentctl db start` (or db serve, demo)", file=sys.stderr)
    return EXIT_OK


async def cmd_db_start(args: argparse.Namespace) -> int:
    if not Session(args).target.embedded:
        raise UsageError(
            "db start starts the embedded server; this command points at an external one"
        )
    await asyncio.to_thread(EmbeddedServer(state_dir()).ensure_running, start_stopped=True)
    print("embedded database running")
    return EXIT_OK
