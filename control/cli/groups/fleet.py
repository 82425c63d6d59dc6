"""`inventory`, `provision`, `rollout`: the fleet as declared and set up."""

from __future__ import annotations

from control.cli.declare import (
    Commands,
    _seconds,
    host_keys_flag,
    hosts_flags,
    json_flag,
    parallel_flag,
)


def configure(c: Commands) -> None:
    ips = c.group(
        "inventory",
        "validate or import the inventory",
        ("inventory check", "inventory import old/config.yaml -o inventory.yaml"),
    )
    sp = c.action(
        ips, "check", "fleet:cmd_inventory", "validate and summarise", ("inventory check --json",)
    )
    json_flag(sp)
    sp = c.action(
        ips,
        "import",
        "fleet:cmd_inventory",
        "convert the old fleet's config.yaml to an inventory",
        ("inventory import config.yaml -o inventory.yaml",),
    )
    sp.add_argument("legacy", metavar="LEGACY_CONFIG_YAML", help="the old fleet's config.yaml")
    sp.add_argument("--output", "-o", metavar="PATH", help="write here (default: stdout)")
    sp.add_argument("--force", action="store_true", help="overwrite --output")

    sp = c.add(
        "provision",
        "fleet:cmd_provision",
        "set a host up over SSH: env, code, secrets, agent",
        ("provision mac-1 --dry-run", "provision --all --yes --parallel 20"),
        audit="provision",
    )
    hosts_flags(sp, "hosts to provision", "every enabled ssh host")
    sp.add_argument("--dry-run", action="store_true", help="show what would change")
    sp.add_argument("--yes", "-y", action="store_true", help="no confirmation (for scripts)")
    host_keys_flag(sp)
    parallel_flag(sp, 10)
    sp.add_argument(
        "--source", metavar="DIR", help="the code tree to ship (default: this installation's)"
    )
    json_flag(sp, "one JSON object per host with its steps")

    sp = c.add(
        "rollout",
        "fleet:cmd_rollout",
        "ship new code to running hosts without losing work",
        ("rollout --all", "rollout mac-1 mac-2 --parallel 2"),
        audit="rollout",
    )
    hosts_flags(sp, "hosts to update", "every enabled ssh host")
    parallel_flag(sp, 1)
    sp.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=1800.0,
        metavar="SECONDS",
        help="how long a host may take to finish its running tasks (default 1800)",
    )
    host_keys_flag(sp)
    sp.add_argument("--source", metavar="DIR", help="the code tree to ship")
    json_flag(sp, "one JSON object per host with its steps")
