"""`contentctl db serve` and `db url`: the embedded server for agents on other machines."""

from __future__ import annotations

import json
import secrets
import socket
from urllib.parse import quote

from control.core.db import redact
from control.core.errors import ContentctlError
from control.core.secrets import get_secret, set_secret
from control.core.settings import DatabaseTarget, state_dir
from control.head.embedded import DATABASE, EmbeddedServer


def _password_key() -> str:
    return f"db-password:{state_dir()}"


def serve(listen: str, port: int, advertise: str | None) -> tuple[str, list[str]]:
    """Listen on TCP for agent roles (scram); return the endpoint's URL (no role, no password)
    and what changed for an existing fleet (the shared all-data role of earlier versions
    retired)."""
    server = EmbeddedServer(state_dir())
    listen_addr = "*" if listen in ("", "*") else listen
    changes = server.serve(listen_addr, port)
    advertised = advertise or (
        listen_addr if listen_addr not in ("*", "0.0.0.0", "::") else socket.getfqdn()
    )
    (state_dir() / "advertise.json").write_text(json.dumps({"host": advertised}))
    return _url(advertised, port, None, None), changes


def _url(host: str, port: int, password: str | None, role: str | None) -> str:
    secret = f":{quote(password, safe='')}" if password else ""
    user = f"{quote(role, safe='')}{secret}@" if role else ""
    return f"postgresql://{user}{host}:{port}/{DATABASE}"


def host_agent_url(target: DatabaseTarget, host: str, *, create: bool = True) -> str:
    """The URL one host's agent uses: its own role (`agent_<host>`, created with a password
    kept in this machine's keychain) on the embedded server; an external server's URL as given.
    `create=False` (a dry run) changes nothing on the server."""
    if target.url is not None:
        return target.url
    where, port = _endpoint()
    key = f"{_password_key()}:agent_{host}"
    password = get_secret(key)
    if password is None and create:
        password = secrets.token_urlsafe(24)
        set_secret(key, password)
    if password is not None and create:
        EmbeddedServer(state_dir()).ensure_host_role(host, password)
    return _url(where, port, password, f"agent_{host}")


def _endpoint() -> tuple[str, int]:
    """Where agents on other machines reach the embedded server (`db serve`'s address)."""
    cfg = EmbeddedServer(state_dir()).serve_config()
    if not cfg.listen:
        raise ContentctlError(
            "the embedded database only listens on this machine's unix socket: "
            "run `contentctl db serve` so agents on other machines can reach it"
        )
    try:
        where = str(json.loads((state_dir() / "advertise.json").read_text())["host"])
    except (OSError, ValueError, KeyError):
        where = socket.getfqdn()
    return where, cfg.port


def agent_url(target: DatabaseTarget, show_password: bool, host: str | None = None) -> str:
    """The URL to give an agent: `host`'s own role on the embedded server (made if missing),
    or the server's address alone (every agent logs in as its own role); an external
    server's URL as configured."""
    if target.url is not None:
        return target.url if show_password else redact(target.url)
    if host is not None:
        url = host_agent_url(target, host)
        return url if show_password else redact(url)
    where, port = _endpoint()
    return _url(where, port, None, None)


NOT_SERVED = "postgresql://agent_{host}@NOT-SERVED-YET:5432/contentctl"


def planned_url(target: DatabaseTarget, host: str | None = None) -> str:
    """For a dry run: the URL an agent would get, changing nothing; when the embedded server
    does not listen on TCP yet, a placeholder that says so (the plan shows `db serve` is
    needed, instead of refusing to plan)."""
    try:
        if host is None:
            return agent_url(target, True)
        return host_agent_url(target, host, create=False)
    except ContentctlError:
        return NOT_SERVED.format(host=host or "HOST")
