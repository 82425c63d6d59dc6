"""SSH to the fleet over asyncssh: verified host keys, one connection per host per command,
parallel fan-out under a bound where one host's failure never stops the others.

Host keys are checked against known_hosts (`~/.ssh/known_hosts`, or the inventory's
`known_hosts:`). An unknown key is refused with its fingerprint unless the operator passed
`--accept-new-host-keys` (then it is recorded); a changed key is refused, full stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from control.core.errors import ContentctlError
from control.core.inventory import HostSpec
from control.core.redact import first_line, scrub

CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 600.0
T = TypeVar("T")


class SSHFailure(ContentctlError):
    """One host could not be reached or refused us: the message names the host and the fix."""


@dataclass(frozen=True)
class Result:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def last_line(self) -> str:
        lines = [ln for ln in (self.stderr or self.stdout).strip().splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit status {self.exit_status}"


def _pattern(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


@dataclass
class SSH:
    """Connections to the hosts of one command, opened on first use and kept for it."""

    known_hosts: Path
    accept_new: bool = False
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    _conns: dict[str, asyncssh.SSHClientConnection] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def connection(self, host: HostSpec) -> asyncssh.SSHClientConnection:
        lock = self._locks.setdefault(host.name, asyncio.Lock())
        async with lock:
            conn = self._conns.get(host.name)
            if conn is not None and not conn.is_closed():
                return conn
            conn = await self._connect(host)
            self._conns[host.name] = conn
            return conn

    async def _connect(self, host: HostSpec) -> asyncssh.SSHClientConnection:
        where = f"{host.name} ({host.address}:{host.port})"
        await self._check_host_key(host, where)
        keys = [str(Path(host.identity_file).expanduser())] if host.identity_file else ()
        try:
            async with asyncio.timeout(self.connect_timeout_s + 5):
                return await asyncssh.connect(
                    host.address,
                    port=host.port,
                    username=host.user or None,
                    known_hosts=str(self.known_hosts),
                    client_keys=keys or (),
                    connect_timeout=self.connect_timeout_s,
                    keepalive_interval=30,
                )
        except asyncssh.HostKeyNotVerifiable:
            raise SSHFailure(
                f"{where}: host key changed since it was recorded in {self.known_hosts}: "
                "refusing to connect; if the host was reinstalled, remove its old line there"
            ) from None
        except asyncssh.PermissionDenied:
            raise SSHFailure(
                f"{where}: authentication failed for user {host.user or '(default)'}: check "
                "identity_file in the inventory or the keys in your SSH agent"
            ) from None
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise SSHFailure(f"{where}: unreachable ({_reason(exc)}): is it up?") from None

    async def _check_host_key(self, host: HostSpec, where: str) -> None:
        """Unknown keys: refused with their fingerprint, or recorded with accept_new. (A known
        key that changed is caught by asyncssh's own check in connect.)"""
        if self._known(host):
            return
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                key = await asyncssh.get_server_host_key(host.address, host.port)
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise SSHFailure(f"{where}: unreachable ({_reason(exc)}): is it up?") from None
        if key is None:
            raise SSHFailure(f"{where}: sent no host key")
        fingerprint = key.get_fingerprint("sha256")
        if not self.accept_new:
            raise SSHFailure(
                f"{where}: unknown host key {fingerprint}: verify it, then run again with "
                "--accept-new-host-keys to record it"
            )
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        line = f"{_pattern(host.address, host.port)} {key.export_public_key().decode().strip()}\n"
        with self.known_hosts.open("a") as fh:
            fh.write(line)

    def _known(self, host: HostSpec) -> bool:
        if not self.known_hosts.exists():
            return False
        known = asyncssh.read_known_hosts(str(self.known_hosts))
        matched: Any = known.match(host.address, host.address, host.port)
        return bool(matched[0] or matched[1])

    async def run(
        self,
        host: HostSpec,
        command: str,
        *,
        input: str | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S,
    ) -> Result:
        """Run `command` (a shell line; never put a secret in it: secrets go on `input`)."""
        conn = await self.connection(host)
        try:
            async with asyncio.timeout(timeout_s):
                proc = await conn.run(command, input=input, check=False)
        except TimeoutError:
            raise SSHFailure(
                f"{host.name}: `{command.split()[0]}` did not finish within {timeout_s:g} s"
            ) from None
        except (OSError, asyncssh.Error) as exc:
            self._conns.pop(host.name, None)
            raise SSHFailure(f"{host.name}: connection lost ({_reason(exc)})") from None
        return Result(
            int(proc.exit_status if proc.exit_status is not None else 255),
            str(proc.stdout or ""),
            str(proc.stderr or ""),
        )

    async def put(self, host: HostSpec, files: Sequence[tuple[Path, str]]) -> int:
        """Copy local files to remote paths (each written beside and renamed); returns bytes."""
        conn = await self.connection(host)
        sent = 0
        remote = ""
        try:
            async with conn.start_sftp_client() as sftp:
                for local, remote in files:
                    parent = remote.rsplit("/", 1)[0]
                    await sftp.makedirs(parent, exist_ok=True)
                    tmp = f"{remote}.contentctl-part"
                    await sftp.put(str(local), tmp, preserve=True)
                    await sftp.posix_rename(tmp, remote)
                    sent += local.stat().st_size
        except (OSError, asyncssh.Error) as exc:
            raise SSHFailure(
                f"{host.name}: cannot write {remote or 'files'} ({_reason(exc)}): is base_dir "
                "writable by the SSH user?"
            ) from None
        return sent

    async def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        for conn in self._conns.values():
            await conn.wait_closed()
        self._conns.clear()


def _reason(exc: BaseException) -> str:
    return first_line(exc)


@dataclass(frozen=True)
class Outcome:
    host: str
    ok: bool
    value: Any = None
    error: str | None = None
    seconds: float = 0.0


async def fan_out(
    hosts: Sequence[HostSpec],
    work: Callable[[HostSpec], Awaitable[T]],
    *,
    parallel: int = 10,
) -> list[Outcome]:
    """Run `work` for every host, at most `parallel` at once. A host that fails is reported
    with its one-line reason; the others carry on."""
    gate = asyncio.Semaphore(max(1, parallel))

    async def one(host: HostSpec) -> Outcome:
        async with gate:
            t0 = time.monotonic()
            try:
                value = await work(host)
            except ContentctlError as exc:
                return Outcome(host.name, False, error=str(exc), seconds=time.monotonic() - t0)
            except Exception as exc:  # one host's surprise never stops the others
                error = f"{host.name}: {type(exc).__name__}: {_reason(exc)}"
                return Outcome(host.name, False, error=scrub(error), seconds=time.monotonic() - t0)
            return Outcome(host.name, True, value, seconds=time.monotonic() - t0)

    return list(await asyncio.gather(*(one(h) for h in hosts)))
