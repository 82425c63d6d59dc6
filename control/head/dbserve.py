"""`contentctl db serve` and `db url`: the embedded server for agents on other machines."""

from __future__ import annotations

import json
import secrets
import socket
from urllib.parse import quote, urlsplit

from control.core.db import redact
from control.core.errors import ContentctlError
from control.core.secrets import get_secret, set_secret
from control.core.settings import DatabaseTarget, state_dir
from control.head.embedded import AGENT_ROLE, DATABASE, EmbeddedServer


def _password_key() -> str:
    return f"db-password:{state_dir()}"


def serve(listen: str, port: int, advertise: str | None) -> str:
    """Listen on TCP with a generated password (kept in the keychain); return the agents' URL."""
    password = get_secret(_password_key())
    if not password:
        password = secrets.token_urlsafe(24)
        set_secret(_password_key(), password)
    server = EmbeddedServer(state_dir())
    listen_addr = "*" if listen in ("", "*") else listen
    server.serve(listen_addr, port, password)
    advertised = advertise or (
        listen_addr if listen_addr not in ("*", "0.0.0.0", "::") else socket.getfqdn()
    )
    (state_dir() / "advertise.json").write_text(json.dumps({"host": advertised}))
    return _url(advertised, port, password)


def _url(host: str, port: int, password: str | None, role: str = AGENT_ROLE) -> str:
    secret = f":{quote(password, safe='')}" if password else ""
    return f"postgresql://{quote(role, safe='')}{secret}@{host}:{port}/{DATABASE}"


def host_agent_url(target: DatabaseTarget, host: str, *, create: bool = True) -> str:
    """The URL one host's agent uses: its own role (`agent_<host>`, created with a password
    kept in this machine's keychain) on the embedded server; an external server's URL as given.
    `create=False` (a dry run) changes nothing on the server."""
    if target.url is not None:
        return target.url
    shared = agent_url(target, True)  # serving over TCP, and where
    key = f"{_password_key()}:agent_{host}"
    password = get_secret(key)
    if password is None and create:
        password = secrets.token_urlsafe(24)
        set_secret(key, password)
    if password is not None and create:
        EmbeddedServer(state_dir()).ensure_host_role(host, password)
    parts = urlsplit(shared)
    return _url(parts.hostname or "", parts.port or 5432, password, f"agent_{host}")


def agent_url(target: DatabaseTarget, show_password: bool) -> str:
    if target.url is not None:
        return target.url if show_password else redact(target.url)
    server = EmbeddedServer(state_dir())
    cfg = server.serve_config()
    if not cfg.listen:
        raise ContentctlError(
            "the embedded database only listens on this machine's unix socket: "
            "run `contentctl db serve` so agents on other machines can reach it"
        )
    try:
        host = json.loads((state_dir() / "advertise.json").read_text())["host"]
    except (OSError, ValueError, KeyError):
        host = socket.getfqdn()
    password = get_secret(_password_key())
    if password is None:
        raise ContentctlError(
            "the database password is missing from this machine's keychain: "
            "run `contentctl db serve` again to set a new one"
        )
    url = _url(host, cfg.port, password)
    return url if show_password else redact(url)
