"""What every command needs: the inventory and the database it points at."""

from __future__ import annotations

import argparse
import logging

from control import db
from control.inventory import Inventory
from control.inventory import load as load_inventory
from control.settings import DatabaseTarget, database_target, inventory_path

log = logging.getLogger("contentctl")


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


def task_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a task id is a number, not {text!r}") from None
