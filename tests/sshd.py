"""Throwaway OpenSSH servers on loopback addresses (127.0.0.2, 127.0.0.3, ...), keys generated
per run. Each is stopped by its pid when the test ends. Never any address outside 127/8."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until

SSHD = "/usr/sbin/sshd"


@dataclass
class Sshd:
    address: str
    port: int
    dir: Path
    host_key: Path
    user_key: Path

    @property
    def pid(self) -> int | None:
        try:
            return int((self.dir / "sshd.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def new_host_key(self) -> None:
        """Replace the host key and restart: what a reinstalled (or spoofed) host looks like."""
        self.stop()
        _wait_free(self.address, self.port)
        self.host_key.unlink()
        self.host_key.with_suffix(".pub").unlink()
        _keygen(self.host_key)
        _start(self)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _answers(address: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((address, port)) == 0


def _wait_free(address: str, port: int) -> None:
    with contextlib.suppress(AssertionError):  # still taken after 5 s: the start will say so
        wait_until("port free", lambda: not _answers(address, port), 5, interval=0.05)


def _start(server: Sshd) -> None:
    subprocess.run(
        [SSHD, "-f", str(server.dir / "sshd_config"), "-E", str(server.dir / "log")], check=True
    )
    wait_until(
        f"sshd on {server.address}:{server.port} started",
        lambda: _answers(server.address, server.port),
        5,
        interval=0.05,
    )


def _tls_env() -> str:
    """This machine's TLS trust settings (its package index may sit behind a TLS proxy), passed
    on as the host's own environment would have them."""
    return "".join(
        f" {name}={os.environ[name]}"
        for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")
        if os.environ.get(name) and " " not in os.environ[name]
    )


def start_sshd(
    address: str,
    root: Path,
    user_key: Path,
    *,
    path_first: Path | None = None,
    home: Path | None = None,
) -> Sshd:
    """An sshd on `address`; `path_first` goes first on the sessions' PATH (shims), `home`
    replaces HOME (service files a test host writes stay in the test's directory)."""
    assert address.startswith("127."), "tests only ever use loopback addresses"
    d = root / f"sshd-{address}"
    d.mkdir(parents=True)
    host_key = d / "hostkey"
    _keygen(host_key)
    (d / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
    port = free_port(address)
    tools = os.path.dirname(shutil.which("uv") or "/usr/local/bin/uv")
    (d / "sshd_config").write_text(
        f"ListenAddress {address}:{port}\n"
        f"HostKey {host_key}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        f"PidFile {d / 'sshd.pid'}\n"
        "Subsystem sftp internal-sftp\n"
        # the machine's uv and Python, as a provisioned fleet host would have them
        f"SetEnv PATH={f'{path_first}:' if path_first else ''}{tools}:/usr/local/bin:/usr/bin:/bin"
        f"{f' HOME={home}' if home else ''}{_tls_env()}\n"
    )
    server = Sshd(address, port, d, host_key, user_key)
    _start(server)
    return server


@pytest.fixture
def sshd_factory(tmp_path: Path) -> Iterator[tuple[Path, list[Sshd]]]:
    """Start sshd's on demand; yields (user key, servers). All stopped at the end."""
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH server not installed (Debian: openssh-server; .ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("the loopback sshd tests log in as root")
    mkdir = Path("/run/sshd")
    mkdir.mkdir(exist_ok=True)
    user_key = tmp_path / "userkey"
    _keygen(user_key)
    servers: list[Sshd] = []
    yield user_key, servers
    for s in servers:
        s.stop()
