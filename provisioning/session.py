"""Building a Provisioner for a command or the dashboard: the agents' database URL from the
head, the NAS password from the head's keychain, heartbeats read from the database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from control import dbserve, fleet
from control.db import AsyncConn
from control.errors import UsageError
from control.inventory import Inventory
from control.secrets import get_secret
from control.settings import DatabaseTarget
from provisioning.provision import Provisioner, Step
from provisioning.ssh import SSH

REPO = Path(__file__).resolve().parent.parent


def ssh_for(inventory: Inventory, accept_new: bool = False) -> SSH:
    known = inventory.known_hosts or "~/.ssh/known_hosts"
    return SSH(Path(known).expanduser(), accept_new=accept_new)


async def build(
    inventory: Inventory,
    target: DatabaseTarget,
    conn: AsyncConn,
    *,
    dry_run: bool = False,
    accept_new: bool = False,
    source: Path | None = None,
    ask_nas_password: Callable[[str], str] | None = None,
    on_step: Callable[[str, Step], None] | None = None,
) -> Provisioner:
    from agent.runner import code_hash

    url = await asyncio.to_thread(dbserve.agent_url, target, True)
    nas_password = None
    if inventory.nas.get("url"):
        nas_password = get_secret("nas_password")
        if nas_password is None:
            if ask_nas_password is None:
                raise UsageError(
                    "the NAS password is not in this machine's keychain: run provision once "
                    "interactively, or store it: `python -m keyring set contentctl nas_password`"
                )
            nas_password = ask_nas_password(f"NAS password for {inventory.nas['url']}: ")

    async def heartbeat(host: str, code: str, since: float) -> bool:
        for r in await fleet.hosts_rows(conn):
            if r["name"] == host and r["code_hash"] == code and r["started_at"] is not None:
                age = r["heartbeat_age_s"]
                started = r["started_at"].timestamp()
                return bool(age is not None and age < 30 and started >= since - 1)
        return False

    tree = source or REPO
    return Provisioner(
        ssh=ssh_for(inventory, accept_new),
        repo=tree,
        inventory_path=inventory.path,
        database_url=url,
        nas_password=nas_password,
        dry_run=dry_run,
        heartbeat=heartbeat,
        head_code_hash=code_hash(tree),
        on_step=on_step,
    )
