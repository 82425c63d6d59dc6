"""`db serve|url|migrate|stop|start`: the database."""

from __future__ import annotations

from control.cli.declare import Commands, _positive


def configure(c: Commands) -> None:
    dbs = c.group("db", "the database: serve, url, migrate, stop", ("db url", "db migrate"))
    c.action(
        dbs,
        "migrate",
        "database:cmd_db_migrate",
        "apply pending schema migrations",
        ("db migrate",),
        audit="db migrate",
    )
    sp = c.action(
        dbs,
        "serve",
        "database:cmd_db_serve",
        "make the embedded server reachable over TCP (password auth)",
        ("db serve --listen 10.0.0.5 --advertise head.lan",),
    )
    sp.add_argument("--listen", default="*", help="listen address(es) (default: all)")
    sp.add_argument(
        "--port", type=_positive("--port", 65535), default=5432, help="TCP port (default 5432)"
    )
    sp.add_argument(
        "--advertise",
        metavar="HOST",
        default=None,
        help="the address agents use to reach this machine (default: its FQDN)",
    )
    sp = c.action(
        dbs,
        "url",
        "database:cmd_db_url",
        "the database URL to give agents",
        ("db url", "db url --host mac-1 --show-password"),
    )
    sp.add_argument(
        "--host", metavar="NAME", help="this host's own URL (its role agent_NAME, made if missing)"
    )
    sp.add_argument("--show-password", action="store_true", help="print the password too")
    c.action(
        dbs,
        "stop",
        "database:cmd_db_stop",
        "stop the embedded server (it stays stopped until db start)",
        ("db stop",),
    )
    c.action(
        dbs,
        "start",
        "database:cmd_db_start",
        "start the embedded server after db stop",
        ("db start",),
    )
