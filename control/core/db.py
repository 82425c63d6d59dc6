"""Connecting to PostgreSQL, versioned migrations, and the schema-version handshake.

Migrations are plain SQL files (`control/migrations/NNNN_name.sql`), applied in order, each in
its own transaction, under an advisory lock so two machines migrating at once cannot interleave.
We chose this over Alembic: the schema is PostgreSQL-specific (partial indexes, SKIP LOCKED,
jsonb), readable SQL is what an operator reviews, and the agent needs no SQLAlchemy at run
time. `tests/integration/test_schema.py` keeps the SQLModel tables in `control/models.py` and
the migrated schema in agreement.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import Notify
from psycopg.rows import AsyncRowFactory, dict_row, scalar_row

from control.core.errors import DatabaseUnavailable, SchemaBehind, SchemaMismatch
from control.core.tasktypes import ALL_TYPES

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x636F6E74  # "cont": pg_advisory_lock key for migrations
TASK_TYPES_VERSION = 15  # the migration that made `task_types` (least privilege)
# An agent's session key: a session-level advisory lock (this class, a key of its own) that the
# server holds exactly as long as the agent's connection lives (migration 0014).
SESSION_LOCK_CLASS = 0x636C6B76  # "clkv"
# The server probes an agent's idle connection (TCP keepalives: after 5 s of silence, 3 probes
# 5 s apart), so a machine that vanished without closing its socket loses its session, and with
# it its liveness and its leases, within ~20 s (the operating system's default is two hours).
# Ignored on Unix sockets, where a dead peer always closes.
AGENT_SESSION_OPTIONS = (
    "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
)
# ...and the agent's own side of it: without these, a statement sent into a silent partition
# waits for the kernel's retransmission limit (15 minutes on Linux) before the agent learns its
# connection is dead. With them every round trip ends within ~20 s of the link going quiet: a
# reply that does not come (keepalive probes, the socket idle), or data not acknowledged (TCP
# user timeout, while sending). Ignored on a unix socket.
AGENT_CLIENT_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,  # ms
}
_MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")

AsyncConn = psycopg.AsyncConnection[dict[str, object]]
R = TypeVar("R")


async def listen(
    conn: psycopg.AsyncConnection[Any],
    channels: Sequence[str],
    listening: Callable[[], object] = lambda: None,
) -> AsyncIterator[Notify]:
    """LISTEN on `channels`, call `listening()`, then yield each notification as it arrives.

    psycopg's `notifies()` wakes every 0.1 s while nothing comes (it breaks a long wait into
    short ones so that a signal can interrupt it: psycopg/psycopg#340); an agent listens all day,
    and those wake-ups were the largest part of an idle agent's CPU after its heartbeat. This
    registers a notify handler before LISTEN (so nothing is left in psycopg's backlog) and
    reads the connection only when the socket is readable. A lost connection raises
    psycopg.OperationalError from `consume_input`, as a query on it would."""
    arrived: deque[Notify] = deque()
    conn.add_notify_handler(arrived.append)
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    fd = conn.pgconn.socket
    try:
        for channel in channels:
            await conn.execute(f"LISTEN {channel}")
        # after the statements: psycopg watches the same socket while one runs, and the event
        # loop keeps one reader per socket (what came meanwhile leaves the socket readable)
        loop.add_reader(fd, readable.set)
        listening()
        while True:
            while arrived:
                yield arrived.popleft()
            await readable.wait()
            readable.clear()
            pgconn = conn.pgconn
            pgconn.consume_input()
            while (note := pgconn.notifies()) is not None:
                if pgconn.notify_handler is not None:
                    pgconn.notify_handler(note)  # psycopg's: it calls ours with a Notify
    finally:
        loop.remove_reader(fd)
        conn.remove_notify_handler(arrived.append)


async def fetch(
    conn: AsyncConn, factory: AsyncRowFactory[R], query: str, params: Mapping[str, Any]
) -> list[R]:
    """Every row of `query`, shaped by a row factory: `class_row(ClaimedTask)` for a typed row,
    `scalar_row` for one column."""
    async with conn.cursor(row_factory=factory) as cur:
        await cur.execute(query.encode(), params)
        return await cur.fetchall()


async def fetch_one(
    conn: AsyncConn, factory: AsyncRowFactory[R], query: str, params: Mapping[str, Any]
) -> R | None:
    async with conn.cursor(row_factory=factory) as cur:
        await cur.execute(query.encode(), params)
        return await cur.fetchone()


async def rows(
    conn: AsyncConn, query: str, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every row as a dict whose values are typed as the columns' (read with care)."""
    return await fetch(conn, dict_row, query, params or {})


async def row(
    conn: AsyncConn, query: str, params: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    return await fetch_one(conn, dict_row, query, params or {})


async def ids(conn: AsyncConn, query: str, params: Mapping[str, Any]) -> list[int]:
    """The first column of every row, as integers (ids a statement returned)."""
    return [int(v) for v in await fetch(conn, scalar_row, query, params)]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    found = []
    for entry in resources.files("control.core.migrations").iterdir():
        m = _MIGRATION_FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    return tuple(found)


def code_schema_version() -> int:
    return migrations()[-1].version


def redact(url: str) -> str:
    """The URL (or conninfo string) with any password replaced by `***`: in the userinfo, in
    the query string (`?password=`), or as a conninfo `password=` (for messages and logs)."""
    from control.core.redact import scrub

    if "://" not in url:  # a conninfo string: host=... password=...
        return scrub(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable database URL>"
    if parts.password is None:
        return scrub(url)
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))


def with_keychain_password(url: str) -> str:
    """A provisioned worker's URL carries no password: it is in the keychain
    (`database_password`), put there by `contentctl provision`, which also sets
    CONTENTCTL_DB_PASSWORD_IN_KEYCHAIN=1 in the agent's environment (nobody else pays for
    loading a keychain backend)."""
    import os

    parts = urlsplit(url) if "://" in url else None
    if parts is None or parts.password or not parts.username:
        return url
    if os.environ.get("CONTENTCTL_DB_PASSWORD_IN_KEYCHAIN") != "1":
        return url
    from control.core.errors import ContentctlError
    from control.core.secrets import get_secret

    try:
        password = get_secret("database_password")
    except ContentctlError:
        return url
    if not password:
        return url
    netloc = f"{parts.username}:{quote(password, safe='')}@{parts.netloc.split('@', 1)[1]}"
    return urlunsplit(parts._replace(netloc=netloc))


def _describe_failure(url: str, exc: Exception) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libpq may echo the connection string; never let a password through.
    parts = urlsplit(url) if "://" in url else None
    if parts is not None and parts.password:
        reason = reason.replace(parts.password, "***")
    return reason


async def connect(
    url: str, *, autocommit: bool = True, timeout_s: float = 10, agent: bool = False
) -> AsyncConn:
    """A connection; `agent`: with the server-side keepalives of an agent's session."""
    extra: dict[str, Any] = (
        {"options": AGENT_SESSION_OPTIONS, **AGENT_CLIENT_KEEPALIVES} if agent else {}
    )
    try:
        return await psycopg.AsyncConnection.connect(
            url,
            autocommit=autocommit,
            row_factory=dict_row,
            connect_timeout=max(1, int(timeout_s)),
            **extra,
        )
    except (psycopg.Error, ValueError) as exc:
        raise DatabaseUnavailable(
            f"cannot reach the database at {redact(url)} ({_describe_failure(url, exc)}): "
            "check --db / CONTENTCTL_DATABASE_URL, or unset it to use the embedded server"
        ) from exc


async def schema_version(conn: AsyncConn) -> int:
    cur = await conn.execute("SELECT to_regclass('contentctl_schema') IS NOT NULL AS present")
    row = await cur.fetchone()
    if not row or not row["present"]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) AS v FROM contentctl_schema")
    row = await cur.fetchone()
    return int(cast(int, row["v"])) if row else 0


async def migrate(conn: AsyncConn) -> list[Migration]:
    """Apply pending migrations; returns those applied. Safe to run from several machines."""
    applied: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS contentctl_schema ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await schema_version(conn)
        known = code_schema_version()
        if current > known:
            raise _too_new(current, known)
        for mig in migrations():
            if mig.version <= current:
                continue
            async with conn.transaction():
                await conn.execute(mig.sql.encode())
                await conn.execute(
                    "INSERT INTO contentctl_schema (version, name) VALUES (%s, %s)",
                    (mig.version, mig.name),
                )
            applied.append(mig)
        if known >= TASK_TYPES_VERSION:
            # the code's task types are declared ones (an agent may insert only those)
            await conn.execute(
                "INSERT INTO task_types (name) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                (list(ALL_TYPES),),
            )
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied


def _too_new(current: int, known: int) -> SchemaMismatch:
    return SchemaMismatch(
        f"the database schema is version {current} but this contentctl knows versions up to "
        f"{known}: upgrade contentctl on this machine"
    )


async def check_schema(conn: AsyncConn, *, migrate_fresh: bool = True) -> int:
    """Stop with a one-line error on a schema this code does not know.

    A fresh database (no schema at all) is migrated on first use: nothing can be running
    against it yet. An older schema is not: other machines may still run the old code, so
    the operator migrates on purpose with `contentctl db migrate`. Anything short of this
    code's version is judged under the migration lock, so a migration under way (another
    command's first start, a rollout) is waited for, not mistaken for an old schema."""
    current = await schema_version(conn)
    known = code_schema_version()
    if current == known:
        return current
    if current > known:
        raise _too_new(current, known)
    await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        current = await schema_version(conn)
        if current == 0 and migrate_fresh:
            await migrate(conn)  # the lock is re-entrant for this session
            return known
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    if current == known:
        return current
    if current > known:
        raise _too_new(current, known)
    raise SchemaBehind(
        f"the database schema is version {current} but this contentctl needs version {known}: "
        "run `contentctl db migrate`"
    )


async def hold_session_key(conn: AsyncConn) -> int:
    """Take a session key of this connection's own: a key under SESSION_LOCK_CLASS that no
    live session holds, locked until the session ends. Liveness and leases go by it."""
    while True:
        key = secrets.randbelow(2**31 - 1) + 1
        cur = await conn.execute(
            "SELECT pg_try_advisory_lock(%s::int4, %s::int4) AS ok", (SESSION_LOCK_CLASS, key)
        )
        got = await cur.fetchone()
        if got is not None and got["ok"]:
            return key


async def open_url(url: str, *, migrate_fresh: bool = True, agent: bool = False) -> AsyncConn:
    """Connect to `url` and check the schema: what every command and agent does first (the
    head resolves an embedded server's URL first: control.head.database)."""
    conn = await connect(url, agent=agent)
    try:
        await check_schema(conn, migrate_fresh=migrate_fresh)
    except BaseException:
        await conn.close()
        raise
    return conn


async def declare_types(conn: AsyncConn, names: list[str]) -> None:
    """Add the inventory's `command` types to those agents may insert (`task_types`): an
    agent enqueues an item's next stage itself. Needs the owner's rights; a head that
    connects with fewer (an agent's URL) leaves it to the next one that can."""
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO task_types (name) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                (names,),
            )
    except psycopg.errors.InsufficientPrivilege:
        log.debug("no right to declare task types %s", names)
