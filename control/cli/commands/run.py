"""`agent run`: this machine's agent in the foreground. Its own module: a worker's agent
loads nothing the other commands need."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket

from agent import nas
from agent.logs import setup as setup_logs
from agent.runner import Agent, config_from_inventory
from control.cli.commands.common import Session
from control.core import names
from control.core.errors import UsageError
from control.core.settings import ENV_DATABASE_URL, state_dir, storage_root
from control.head import database
from control.head.embedded import EmbeddedServer

log = logging.getLogger("contentctl")


async def cmd_agent_run(args: argparse.Namespace) -> int:

    s = Session(args)
    name = names.host_name(args.host or socket.gethostname())
    spec = s.inventory.host(name)
    if spec is not None and not spec.enabled:
        raise UsageError(
            f"host {name!r} is disabled in {s.inventory.path}: set enabled: true to run it"
        )
    url = await asyncio.to_thread(database.resolve_url, s.target)
    buffer = setup_logs(name, state_dir() / "logs", debug=bool(getattr(args, "debug", False)))
    if spec is None:
        log.warning(
            "host %r is not in the inventory: running undeclared, with every task type", name
        )
    cfg = config_from_inventory(
        name,
        s.inventory,
        overrides={
            "max_concurrent": args.concurrency,
            "burst": args.burst,
            "grace_s": args.grace,
            "lease_s": args.lease,
            "lease_grace_s": args.lease_grace,
            "heartbeat_s": args.heartbeat,
        },
    )
    cfg.storage_root = storage_root(
        (spec.storage_root if spec else None) or s.inventory.storage_root
    )
    cfg.nas = nas.mount_for(s.inventory.nas, spec.nas_mount_point if spec else None)
    cfg.nas_credentials = state_dir() / "nas.cred"
    # `restart` re-executes the agent as it was started, keeping its host name. The database
    # URL travels in the environment, never in argv (it may carry a password).
    # (as given: a password the keychain supplied stays out of the environment)
    # The embedded server is found again from the state dir, on restart as on reconnect: its
    # socket follows its port (`db serve --port`), so a URL written down would go stale.
    if s.target.url is not None:
        os.environ[ENV_DATABASE_URL] = s.target.url
    else:
        os.environ.pop(ENV_DATABASE_URL, None)
        cfg.resolve_url = EmbeddedServer(state_dir()).running_uri
    cfg.restart_argv = ["-m", "tui.launcher", "agent", "run", "--host", name]
    cfg.run_marker = state_dir() / "run" / f"agent-{name}.json"
    for flag, value in (
        ("--concurrency", args.concurrency),
        ("--grace", args.grace),
        ("--lease", args.lease),
        ("--lease-grace", args.lease_grace),
        ("--heartbeat", args.heartbeat),
        ("--inventory", getattr(args, "inventory", None)),
    ):
        if value is not None:
            cfg.restart_argv += [flag, str(value)]
    return await Agent(cfg, url, buffer).run()
