"""Building a Provisioner for a command or the dashboard: the agents' database URL from the
head, the NAS password from the head's keychain, heartbeats read from the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from control.core import fleet
from control.core.codehash import code_hash
from control.core.db import AsyncConn
from control.core.errors import ContentctlError, UsageError
from control.core.inventory import HostSpec, Inventory
from control.core.secrets import get_secret
from provisioning import plan
from provisioning.provision import Provisioner, Step, read_facts
from provisioning.ssh import SSH

REPO = Path(__file__).resolve().parent.parent


def ssh_for(inventory: Inventory, accept_new: bool = False) -> SSH:
    known = inventory.known_hosts or "~/.ssh/known_hosts"
    return SSH(Path(known).expanduser(), accept_new=accept_new)


async def build(
    inventory: Inventory,
    agent_url: str,
    conn: AsyncConn,
    *,
    dry_run: bool = False,
    accept_new: bool = False,
    source: Path | None = None,
    ask_nas_password: Callable[[str], str] | None = None,
    on_step: Callable[[str, Step], None] | None = None,
    host_url: Callable[[HostSpec], Awaitable[str]] | None = None,
) -> Provisioner:
    """`host_url`: each host's own database URL (its own role), when the head makes them."""
    url = agent_url  # the URL agents use, with its password (split off before sending)
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
        host_url=host_url,
    )


async def agent_over_ssh(ssh: SSH, host: HostSpec, action: str) -> str:
    """Start, stop or restart a provisioned host's agent process over SSH (for when it is not
    running, or not answering through the database). Returns what happened."""

    facts = await read_facts(ssh, host)
    layout = plan.Layout(facts.base_dir)
    if not facts.code_present:
        raise ContentctlError(
            f"{host.name}: not provisioned: run `contentctl provision {host.name}`"
        )
    kind = facts.service or "supervisor"  # the manager provisioning installed
    if kind == "supervisor":
        running = bool(facts.supervisor_pid)
        if action == "start" and running:
            return f"already running (supervisor pid {facts.supervisor_pid})"
    else:
        running = facts.service_running
    if action == "stop" and not running:
        return f"not running ({kind})"
    for cmd in plan.control_commands(kind, facts, host, layout, action):
        res = await ssh.run(host, cmd, timeout_s=90)
        if not res.ok:
            raise ContentctlError(f"{host.name}: {action} failed ({kind}): {res.last_line()}")
    return {"start": "started", "stop": "stopped", "restart": "restarted"}[action] + f" ({kind})"
