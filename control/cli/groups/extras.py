"""`demo`, `web`, `completion`."""

from __future__ import annotations

from control.cli.declare import Commands, _positive


def configure(c: Commands) -> None:
    sp = c.add(
        "demo",
        "extras:cmd_demo",
        "embedded Postgres + local agents + sample work",
        ("demo", "demo --headless --agents 3"),
    )
    sp.add_argument(
        "--headless", action="store_true", help="no dashboard: print a summary and exit"
    )
    sp.add_argument(
        "--agents", type=_positive("--agents", 64), default=2, help="local agents (default 2)"
    )

    sp = c.add(
        "web",
        "extras:cmd_web",
        "the dashboard in a browser (a token always; one dashboard process per tab)",
        (
            "web",
            "web --read-only --port 8766",
            "web --listen 0.0.0.0   # plain HTTP: on a trusted network only",
        ),
    )
    sp.add_argument(
        "--listen",
        metavar="ADDRESS",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1: this machine only)",
    )
    sp.add_argument(
        "--port", type=_positive("--port", 65535), default=8765, help="TCP port (default 8765)"
    )
    sp.add_argument(
        "--read-only",
        action="store_true",
        help="sessions without actions (no drain, restart, cancel, retry, provision, "
        "configure), as a database role that cannot write",
    )
    sp.add_argument(
        "--max-sessions",
        type=_positive("--max-sessions", 64),
        default=4,
        help="open tabs at once (each is a dashboard process, ~100 MB; default 4)",
    )
    sp.add_argument(
        "--new-token",
        action="store_true",
        help="replace the token in the keychain (links printed before stop working)",
    )

    sp = c.add(
        "completion",
        "extras:cmd_completion",
        "print the shell completion script",
        ("completion bash >> ~/.bashrc", 'eval "$(contentctl completion zsh)"'),
    )
    sp.add_argument("shell", choices=("bash", "zsh", "fish", "tcsh"), help="your shell")
