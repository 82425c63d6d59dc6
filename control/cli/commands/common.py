"""What every command needs: the inventory and the database it points at."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import AsyncIterator

from control.core import db, tasktypes
from control.core.errors import UsageError
from control.core.inventory import Inventory
from control.core.inventory import load as load_inventory
from control.core.settings import DatabaseTarget, database_target, inventory_path
from control.head import database

log = logging.getLogger("contentctl")


class Session:
    """What a command needs: the inventory and the database it points at."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.inventory: Inventory = load_inventory(
            inventory_path(getattr(args, "inventory", None))
        ).use()
        check_types(getattr(args, "type", None))
        self.target: DatabaseTarget = database_target(
            getattr(args, "db", None), self.inventory.database
        )

    async def connect(self) -> db.AsyncConn:
        return await database.open_database(self.target)

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[db.AsyncConn]:
        """`async with s.database() as conn:` the command's connection, closed at the end."""
        conn = await self.connect()
        try:
            yield conn
        finally:
            await conn.close()


def check_types(value: str | list[str] | None) -> None:
    """A TYPE argument names a known type: built-in, or a command type of the inventory."""
    for name in [value] if isinstance(value, str) else value or []:
        if not tasktypes.is_known(name):
            raise UsageError(
                f"unknown task type {name!r}: use one of {', '.join(tasktypes.known())}"
            )


ID_MAX = 2**63 - 1  # ids are bigint


def task_id(text: str) -> int:
    """An id from the command line (tasks and media items alike)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an id is a whole number, not {text!r}") from None
    if not 1 <= value <= ID_MAX:
        raise argparse.ArgumentTypeError(f"an id is a positive whole number, not {text!r}")
    return value
