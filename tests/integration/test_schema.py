"""The SQLModel tables describe the migrated schema: same columns, same nullability."""

from __future__ import annotations

import pytest

from control import db
from control.models import Host, Task


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
