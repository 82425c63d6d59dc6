"""`prune`, `audit`, `metrics serve`, `alerts`: months of operation."""

from __future__ import annotations

from control.cli.declare import Commands, _duration, _whole, json_flag, limit_flag


def configure(c: Commands) -> None:
    sp = c.add(
        "prune",
        "operations:cmd_prune",
        "remove finished rows past their retention (rolled up by day first) and expired "
        "media files",
        ("prune --dry-run", "prune --json"),
        audit="prune",
    )
    sp.add_argument(
        "--dry-run", action="store_true", help="count what would go and the disk it frees"
    )
    json_flag(sp, "machine-readable: tasks by state, other rows, files, bytes_freed")

    sp = c.add(
        "audit",
        "operations:cmd_audit",
        "operators' actions: who did what, on which hosts or tasks, and how it ended",
        ("audit", "audit --since 24h --json"),
    )
    sp.add_argument(
        "--since",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="only actions from the last DURATION (90s, 30m, 2h, 7d)",
    )
    limit_flag(sp, 200)
    json_flag(sp)

    mps = c.group(
        "metrics",
        "Prometheus metrics of the fleet (and the head's alerts and daily prune)",
        ("metrics serve", "metrics serve --listen 0.0.0.0 --port 9464"),
    )
    sp = c.action(
        mps,
        "serve",
        "operations:cmd_metrics_serve",
        "serve /metrics until stopped; also evaluates alerts and runs the daily prune",
        ("metrics serve", "metrics serve --no-prune"),
    )
    sp.add_argument(
        "--listen", default="127.0.0.1", metavar="ADDR", help="address (default 127.0.0.1)"
    )
    sp.add_argument(
        "--port", type=_whole("--port", 0, 65535), default=9464, help="port (default 9464)"
    )
    sp.add_argument("--no-alerts", action="store_true", help="do not evaluate alert rules here")
    sp.add_argument("--no-prune", action="store_true", help="do not run the daily prune here")

    als = c.group(
        "alerts",
        "alert incidents and webhooks (rules: the inventory's alerts block)",
        ("alerts test", "alerts list --json"),
    )
    sp = c.action(
        als,
        "test",
        "operations:cmd_alerts",
        "send one test message to every webhook",
        ("alerts test",),
        audit="alerts test",
    )
    json_flag(sp)
    sp = c.action(
        als,
        "list",
        "operations:cmd_alerts",
        "recent incidents, open and closed",
        ("alerts list --json",),
    )
    limit_flag(sp)
    json_flag(sp)
