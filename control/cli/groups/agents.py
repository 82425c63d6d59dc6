"""`agent run|drain|undrain|restart|stop|start|forget` and `logs`: the fleet's agents."""

from __future__ import annotations

from control.cli.declare import (
    Commands,
    _duration,
    _positive,
    _seconds,
    host_keys_flag,
    hosts_flags,
    json_flag,
    parallel_flag,
)
from control.core.fleet import LOG_LEVELS


def configure(c: Commands) -> None:
    ags = c.group(
        "agent",
        "run or control worker agents",
        ("agent run --host mac-1", "agent drain mac-1 --deadline 30m", "agent restart --all"),
    )
    sp = c.action(
        ags,
        "run",
        "run:cmd_agent_run",
        "run an agent in the foreground here",
        ("agent run --host mac-1", "agent run --burst --concurrency 10"),
    )
    sp.add_argument("--host", help="host name (default: this machine's)")
    sp.add_argument("--burst", action="store_true", help="exit when no claimable work is left")
    sp.add_argument(
        "--concurrency",
        type=_positive("--concurrency", 1024),
        default=None,
        help="override max_concurrent_tasks",
    )
    sp.add_argument(
        "--grace",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, how long running tasks may finish before they go back to the queue",
    )
    sp.add_argument(
        "--lease",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="task lease in seconds (default 150): renewed by the heartbeat once a minute",
    )
    sp.add_argument(
        "--lease-grace",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="how long a lease outlives its agent's database session (default 90): an agent "
        "whose network comes back in time keeps its work; a dead one's runs elsewhere after",
    )
    sp.add_argument(
        "--heartbeat",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="heartbeat interval (default 5)",
    )
    for name, text in (
        ("drain", "finish running tasks, claim nothing new (until undrain)"),
        ("undrain", "claim again after a drain"),
        ("restart", "drain, then restart the agent process (same host name)"),
        ("stop", "stop the agent (running tasks get a grace period, then go back to the queue)"),
    ):
        sp = c.action(
            ags,
            name,
            "agents:cmd_agent_command",
            text,
            (f"agent {name} mac-1", f"agent {name} --all"),
            audit=f"agent {name}",
        )
        hosts_flags(sp, "hosts to tell")
        sp.add_argument(
            "--timeout",
            type=_seconds,
            default=20.0,
            metavar="SECONDS",
            help="how long to wait for the acknowledgement (default 20)",
        )
        if name in ("drain", "restart"):
            sp.add_argument(
                "--deadline",
                type=_duration,
                default=None,
                metavar="DURATION",
                help="hand running tasks back to the queue after this long (e.g. 90s, 30m, 2h)",
            )
        json_flag(sp, "one JSON object per host: host, ok, outcome, via")

    sp = c.action(
        ags,
        "forget",
        "agents:cmd_agent_forget",
        "remove a host the inventory no longer declares (refused while it holds tasks)",
        ("agent forget demo-1",),
        audit="agent forget",
    )
    sp.add_argument("host", metavar="HOST", help="the host to forget")
    json_flag(sp)
    sp = c.action(
        ags,
        "start",
        "agents:cmd_agent_ssh",
        "start the agent over SSH",
        ("agent start mac-1", "agent start --all"),
        audit="agent start",
    )
    hosts_flags(sp, "hosts to start", "every enabled ssh host")
    host_keys_flag(sp)
    parallel_flag(sp, 10)
    json_flag(sp, "one JSON object per host: host, ok, outcome")

    sp = c.add(
        "logs",
        "agents:cmd_logs",
        "recent agent log lines (from the database)",
        ("logs mac-1 -f", "logs all --level WARNING --since 2h --json"),
    )
    sp.add_argument("host", metavar="HOST", help="a host name, or `all`")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    sp.add_argument(
        "--lines", type=_positive("--lines"), default=50, help="how many lines (default 50)"
    )
    sp.add_argument(
        "--since",
        type=_duration,
        default=None,
        metavar="DURATION",
        help="only lines from the last DURATION (90s, 30m, 2h)",
    )
    sp.add_argument(
        "--level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        help="only lines at this level and above",
    )
    json_flag(sp, "JSON lines: one object per log line")
