"""The audit trail: every operator action (drain, retry, cancel, provision, prune, source
changes...) is one row: when, who (OS user and machine), through what (cli, dashboard), what, on
which hosts or tasks, and how it ended. Written by control.head and the CLI, read by
`contentctl audit` and the dashboard."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from control.core import db
from control.core.redact import scrub, scrub_value
from control.core.sql import q

VIA = ("cli", "dashboard", "head")


def actor() -> str:
    """user@machine of this process (the OS user; never a database role or a secret)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def record(
    conn: db.AsyncConn,
    action: str,
    targets: Sequence[Any],
    outcome: str,
    *,
    via: str = "cli",
    detail: dict[str, Any] | None = None,
) -> None:
    """One action; its detail is scrubbed of anything that looks like a secret."""
    await conn.execute(
        q("audit_insert"),
        {
            "actor": actor(),
            "via": via,
            "action": action,
            # a refused URL with user:pass@ is kept as the operator gave it, less the secret
            "targets": Jsonb([scrub(str(t)) for t in targets][:1000]),
            "outcome": scrub(outcome),
            "detail": Jsonb(scrub_value(detail or {})),
        },
    )


async def recent(
    conn: db.AsyncConn, since: datetime | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    return await db.rows(conn, q("audit_recent"), {"since": since, "limit": limit})
