"""The SQLModel tables describe the migrated schema: same columns, same nullability."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from control.core import db
from control.head.models import Host, Task
from tests.conftest import _counter, _with_database, kill_tree
from tests.helpers import contentctl, holds, wait_for


@pytest.mark.parametrize("model", [Task, Host])
async def test_models_match_the_migrated_tables(conn: db.AsyncConn, model: type) -> None:
    table = model.__table__
    cur = await conn.execute(
        "SELECT column_name, is_nullable FROM information_schema.columns "
        "WHERE table_name = %s ORDER BY ordinal_position",
        (table.name,),
    )
    in_db = {r["column_name"]: r["is_nullable"] == "YES" for r in await cur.fetchall()}
    in_model = {c.name: bool(c.nullable) and not c.primary_key for c in table.columns}
    assert in_model.keys() == in_db.keys()
    for name, nullable in in_db.items():
        if not nullable:
            # NOT NULL in the database: the model must not pretend it may be missing.
            assert not in_model[name], f"{table.name}.{name} is NOT NULL in the schema"


async def test_migrate_is_idempotent_and_versioned(conn: db.AsyncConn) -> None:
    assert await db.migrate(conn) == []
    assert await db.schema_version(conn) == db.code_schema_version()


@pytest.fixture
def empty_db(admin_url: str) -> Iterator[str]:
    """A database with no schema at all (not from the template)."""
    name = f"empty_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _apply(conn: db.AsyncConn, upto: int) -> None:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS contentctl_schema (version integer PRIMARY KEY,"
        " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for mig in db.migrations():
        if mig.version <= upto:
            await conn.execute(mig.sql.encode())
            await conn.execute(
                "INSERT INTO contentctl_schema (version, name) VALUES (%s, %s)",
                (mig.version, mig.name),
            )


async def test_a_schema_check_waits_for_a_migration_under_way(empty_db: str) -> None:
    """Before, a process starting while another migrated read version 1 of N and gave up."""
    migrator = await db.connect(empty_db)
    starter = await db.connect(empty_db)
    try:
        await migrator.execute("SELECT pg_advisory_lock(%s)", (db.MIGRATION_LOCK,))
        await _apply(migrator, 1)  # half-way through, still holding the lock
        check = asyncio.create_task(db.check_schema(starter))
        pid = starter.info.backend_pid

        async def waits_on_the_lock() -> bool:
            row = await db.row(
                migrator,
                "SELECT count(*) AS n FROM pg_locks WHERE pid = %(p)s AND locktype = 'advisory'"
                " AND NOT granted",
                {"p": pid},
            )
            return bool(row and row["n"])

        await wait_for(waits_on_the_lock, 10)
        assert not check.done()  # it waits on the lock instead of judging version 1
        await db.migrate(migrator)
        await migrator.execute("SELECT pg_advisory_unlock(%s)", (db.MIGRATION_LOCK,))
        assert await asyncio.wait_for(check, 10) == db.code_schema_version()
    finally:
        await migrator.close()
        await starter.close()


async def test_an_agent_meeting_an_older_schema_waits_for_the_migration(
    empty_db: str, agent_env: dict[str, str]
) -> None:
    conn = await db.connect(empty_db)
    try:
        await _apply(conn, db.code_schema_version() - 1)
    finally:
        await conn.close()
    env = {**agent_env, "CONTENTCTL_DATABASE_URL": empty_db}
    agent = subprocess.Popen(
        [sys.executable, "-m", "tui.launcher", "agent", "run", "--host", "patient"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        try:
            await holds(lambda: agent.poll() is None, 2)  # not exited into a restart loop
        except AssertionError:
            raise AssertionError(agent.communicate()[1]) from None
        migrated = contentctl(env, "db", "migrate")
        assert migrated.returncode == 0, migrated.stderr
        conn = await db.connect(empty_db)
        try:

            async def online() -> bool:
                cur = await conn.execute("SELECT 1 FROM host_beats WHERE name = 'patient'")
                return await cur.fetchone() is not None

            await wait_for(online, 40)
        finally:
            await conn.close()
    finally:
        kill_tree(agent.pid)
        _, err = agent.communicate(timeout=30)
    assert "run `contentctl db migrate`; waiting for it" in err
