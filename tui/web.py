"""`contentctl web`: the same dashboard in a browser, served by textual-serve.

Each browser tab is one dashboard process (`python -m tui.web_session`) driven over a
websocket: exactly the terminal's screens, one code path. Around textual-serve, which has no
authentication of its own, this adds:
- a token, always: every request without it (or without the session cookie the token's page
  sets) gets 401 and nothing else; no dashboard process starts. The token is generated on
  first start and kept in the keychain (`web_token`); `--new-token` replaces it.
- a cap on open sessions (each costs a process and a database connection): a tab past it is
  refused with 503 before anything starts.
- the websocket only from the page's own origin (a cookie alone would let any site a browser
  visits drive the dashboard: cross-site websocket hijacking).
- `--read-only`: sessions start with the dashboard's `--read-only` (no actions, the viewer
  role behind the connection).
- a clean stop on SIGTERM or SIGINT: every session is asked to quit, then killed after a grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from control.core.secrets import get_secret, set_secret

log = logging.getLogger(__name__)

TOKEN_NAME = "web_token"  # the keychain entry
COOKIE = "contentctl_web"
STOP_GRACE_S = 5.0  # a session asked to quit gets this long before it is killed
UNAUTHORIZED = "401: this needs the URL with its token, as `contentctl web` printed it\n"


@dataclass(frozen=True)
class WebOptions:
    listen: str = "127.0.0.1"
    port: int = 8765
    read_only: bool = False
    max_sessions: int = 4
    inventory: str | None = None
    database_url: str | None = None  # goes to sessions in their environment, never argv
    new_token: bool = False


def token(renew: bool = False) -> str:
    """The web token: from the keychain, or made (and kept there) on first start."""
    current = None if renew else get_secret(TOKEN_NAME)
    if current:
        return current
    made = secrets.token_urlsafe(32)
    set_secret(TOKEN_NAME, made)
    return made


class _Session(AppService):
    """One tab's dashboard process, with the browser's address in its environment."""

    def __init__(self, *args: Any, client: str, extra_env: dict[str, str], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.client = client
        self.extra_env = extra_env

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        env = super()._build_environment(width=width, height=height)
        env.update(self.extra_env)
        env["CONTENTCTL_WEB_CLIENT"] = self.client
        return env

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def close(self) -> None:
        """Ask the dashboard to quit; kill it if it has not within the grace."""
        try:
            async with asyncio.timeout(STOP_GRACE_S):
                await self.stop()
        except TimeoutError:
            log.warning("web session of %s did not quit: killed", self.client)
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


class WebDashboard(Server):
    def __init__(self, options: WebOptions, secret: str) -> None:
        command = [sys.executable, "-m", "tui.web_session"]
        if options.read_only:
            command.append("--read-only")
        if options.inventory:
            command += ["--inventory", options.inventory]
        # textual-serve runs it through a shell: `exec` makes the dashboard the process it
        # watches and kills (no shell left between), every word quoted
        super().__init__(
            "exec " + shlex.join(command),
            host=options.listen,
            port=options.port,
            title="contentctl",
        )
        self.options = options
        self.secret = secret
        self.cookie_value = secrets.token_urlsafe(32)  # this run's; the token never travels
        self.sessions: dict[int, _Session] = {}
        self.env = {"CONTENTCTL_DATABASE_URL": options.database_url} if options.database_url else {}

    def initialize_logging(self) -> None:
        """Ours (stderr, plain lines), not textual-serve's."""

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._gate)
        app.on_shutdown.append(self._close_sessions)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints a banner with Rich markup here; the URL is printed by serve."""

    @web.middleware
    async def _gate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        given = request.query.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), self.secret.encode()):
                return web.Response(status=401, text=UNAUTHORIZED)
            # the token becomes this run's cookie, and leaves the address bar and history
            raise web.HTTPFound(
                "/", headers={"Set-Cookie": f"{COOKIE}={self.cookie_value}; " + _COOKIE_FLAGS}
            )
        cookie = request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(cookie.encode(), self.cookie_value.encode()):
            return web.Response(status=401, text=UNAUTHORIZED)
        if request.path == "/ws":
            origin = request.headers.get("Origin")
            if origin != f"{request.scheme}://{request.host}":
                return web.Response(status=403, text="403: the page's own origin only\n")
        return await handler(request)

    async def handle_index(self, request: web.Request) -> Any:
        """The page, with the websocket at the address the browser used (not --listen's,
        which may be 0.0.0.0)."""
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        if len(self.sessions) >= self.options.max_sessions:
            log.warning("web session refused for %s: %d open", request.remote, len(self.sessions))
            return web.Response(
                status=503,
                text=f"503: {len(self.sessions)} sessions are open (--max-sessions): close a tab\n",
            )
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        client = f"{request.remote or '?'} {request.headers.get('User-Agent', '')[:120]}".strip()
        await websocket.prepare(request)
        session = _Session(
            self.command,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=websocket.close,
            download_manager=self.download_manager,
            client=client,
            extra_env=self.env,
        )
        await session.start(width, height)
        pid = session.pid or id(session)
        self.sessions[pid] = session
        log.info("web session %d opened for %s", pid, request.remote)
        try:
            await self._process_messages(websocket, session)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("web session %d", pid)
        finally:
            self.sessions.pop(pid, None)
            await session.close()
            with contextlib.suppress(Exception):
                await websocket.close()
            log.info("web session %d closed", pid)
        return websocket

    async def _close_sessions(self, app: web.Application) -> None:
        await asyncio.gather(*(s.close() for s in list(self.sessions.values())))
        self.sessions.clear()


_COOKIE_FLAGS = "HttpOnly; SameSite=Strict; Path=/"


async def serve(options: WebOptions, *, ready: Callable[[str], None] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a clean stop."""
    server = WebDashboard(options, token(renew=options.new_token))
    app = await server._make_app()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, options.listen, options.port, shutdown_timeout=STOP_GRACE_S)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        from control.core.errors import UsageError

        raise UsageError(
            f"cannot listen on {options.listen}:{options.port} ({exc.strerror}): "
            "choose another --port or --listen"
        ) from None
    host = f"[{options.listen}]" if ":" in options.listen else options.listen
    url = f"http://{host}:{options.port}/?token={server.secret}"
    if ready is not None:
        ready(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopping: %d web session(s) open", len(server.sessions))
        await runner.cleanup()
    return 0
