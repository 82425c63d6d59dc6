"""`storage init|check`: the shared storage root."""

from __future__ import annotations

from control.cli.declare import Commands, json_flag


def configure(c: Commands) -> None:
    sts = c.group(
        "storage",
        "the fleet's shared storage root (a NAS mount): mark it, check every host's view",
        ("storage init", "storage check --json"),
    )
    sp = c.action(
        sts,
        "init",
        "storage:cmd_storage_init",
        "write the fleet's storage marker into the storage root (refused on an empty mount point)",
        ("storage init", "storage init --force"),
        audit="storage init",
    )
    sp.add_argument(
        "--force",
        action="store_true",
        help="mark a root that is not a mount point, or not empty",
    )
    json_flag(sp)
    sp = c.action(
        sts,
        "check",
        "storage:cmd_storage_check",
        "the marker and free space on every host, from their heartbeats",
        ("storage check", "storage check --json"),
    )
    json_flag(sp, "machine-readable: root, storage_id, here, hosts")
