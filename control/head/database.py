"""The head's way to its database: the external server (a provisioned password from the
keychain), or the embedded one in the state dir, started when needed."""

from __future__ import annotations

import asyncio

from control.core import db, tasktypes
from control.core.settings import DatabaseTarget, state_dir
from control.head.embedded import EmbeddedServer


def resolve_url(target: DatabaseTarget, *, start_stopped: bool = False) -> str:
    """The URL to connect to: the external one, or the embedded server (started if needed;
    one the operator stopped with `db stop` only with `start_stopped`)."""
    if target.url is not None:
        return db.with_keychain_password(target.url)
    return EmbeddedServer(state_dir()).ensure_running(start_stopped=start_stopped)


async def open_database(
    target: DatabaseTarget, *, migrate_fresh: bool = True, declare: bool = True
) -> db.AsyncConn:
    """Connect (starting the embedded server if that is the target) and check the schema;
    the `command` types in force here (the inventory's) become ones agents may insert
    (unless `declare` is false: a read-only session writes nothing)."""
    url = await asyncio.to_thread(resolve_url, target)
    conn = await db.open_url(url, migrate_fresh=migrate_fresh)
    if declare and (custom := [t.name for t in tasktypes.custom()]):
        await db.declare_types(conn, custom)
    return conn
