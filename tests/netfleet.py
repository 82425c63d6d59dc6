"""A fleet on one machine, made of Linux network namespaces: the head in one, each worker in
its own, a veth link from each worker to the head (a cable the test can pull), and a NAS
namespace serving a directory over sshd for sshfs. Used by tests/integration/test_network.py
and bench/network.py.

Every address is inside namespaces this module made (10.213.N.0/30 on the veth links);
nothing is routed through the machine's own interfaces. `NetFleet.close()` kills every process
in every namespace it made and deletes the namespaces, whatever happened before; the pytest
fixture calls it even when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import helpers

# the code tree the fleet runs (bench/network.py --tree runs an older checkout side by side)
REPO = Path(os.environ.get("CONTENTCTL_FLEET_TREE") or Path(__file__).resolve().parents[1])
SUBNET = "10.213"  # 10.213.N.1 the head's (or the NAS's) end of link N, .2 the other end
PG_PORT = 5432
SSHD = "/usr/sbin/sshd"


def can_make_namespaces() -> str | None:
    """Why this machine cannot run the network tests, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"ccprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Link:
    n: int
    ns: str  # the far end's namespace (a worker, or the NAS)
    near_ns: str  # the head's (or, for a NAS link, the worker's) namespace
    near_if: str
    far_if: str

    @property
    def near_addr(self) -> str:
        return f"{SUBNET}.{self.n}.1"

    @property
    def far_addr(self) -> str:
        return f"{SUBNET}.{self.n}.2"


@dataclass
class NetFleet:
    """Namespaces and links, named after this process so that parallel runs never meet."""

    root: Path
    tag: str = field(default_factory=lambda: f"cc{os.getpid() % 100000}")
    namespaces: list[str] = field(default_factory=list)
    links: dict[str, Link] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def ns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def add(self, name: str) -> str:
        full = self.ns(name)
        _ip("netns", "add", full)
        self.namespaces.append(full)
        _ip("-n", full, "link", "set", "lo", "up")
        return full

    def link(self, near: str, far: str) -> Link:
        """A veth cable between two namespaces made here; its far end answers at .2."""
        n = len(self.links) + 1
        near_if, far_if = f"{self.tag}n{n}"[-15:], f"{self.tag}f{n}"[-15:]
        _ip("link", "add", near_if, "netns", self.ns(near), "type", "veth", "peer", "name",
            far_if, "netns", self.ns(far))  # fmt: skip
        lk = Link(n, self.ns(far), self.ns(near), near_if, far_if)
        _ip("-n", lk.near_ns, "addr", "add", f"{lk.near_addr}/30", "dev", near_if)
        _ip("-n", lk.ns, "addr", "add", f"{lk.far_addr}/30", "dev", far_if)
        _ip("-n", lk.near_ns, "link", "set", near_if, "up")
        _ip("-n", lk.ns, "link", "set", far_if, "up")
        self.links[far] = lk
        return lk

    def cut(self, far: str) -> None:
        """Pull the cable: both ends lose the link, packets vanish, TCP retransmits."""
        lk = self.links[far]
        _ip("-n", lk.near_ns, "link", "set", lk.near_if, "down")

    def restore(self, far: str) -> None:
        lk = self.links[far]
        _ip("-n", lk.near_ns, "link", "set", lk.near_if, "up")

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        log: Path | None = None,
    ) -> subprocess.Popen[str]:
        """Run `argv` inside namespace `name` (stdout and stderr to `log`)."""
        with open(log if log else os.devnull, "a") as out:  # the child keeps its own copy
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(name), *argv],
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def run(
        self, name: str, argv: Sequence[str], env: dict[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.ns(name), *argv],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def kill_all(self, name: str) -> list[int]:
        """Every process in namespace `name`, killed at once (a machine that lost power)."""
        full = self.ns(name)
        found = subprocess.run(["ip", "netns", "pids", full], capture_output=True, text=True)
        pids = [int(p) for p in found.stdout.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def close(self) -> None:
        for full in self.namespaces:
            found = subprocess.run(["ip", "netns", "pids", full], capture_output=True, text=True)
            for pid in (int(p) for p in found.stdout.split()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        _abort_fuse_of(self.root)
        for full in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", full], capture_output=True)
        self.namespaces.clear()


def _abort_fuse_of(root: Path) -> None:
    """FUSE mounts made under `root` whose daemon is gone or hung: abort their connections so
    nothing stays blocked on them (a hung sshfs holds its callers in uninterruptible sleep)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            parts = line.split()
            if len(parts) > 4 and parts[4].startswith(str(root)) and "fuse" in line:
                dev = parts[2].split(":")[1]
                abort = Path(f"/sys/fs/fuse/connections/{dev}/abort")
                with contextlib.suppress(OSError):
                    abort.write_text("1")
                subprocess.run(["umount", "-l", parts[4]], capture_output=True)


@contextlib.contextmanager
def net_fleet(root: Path) -> Iterator[NetFleet]:
    fleet = NetFleet(root)
    try:
        yield fleet
    finally:
        fleet.close()


# -- the fleet's software ---------------------------------------------------------------------
def cli_env(home: Path, inventory: Path) -> dict[str, str]:
    """The head's environment: its own state dir (embedded server), keychain file, inventory."""
    env = {k: v for k, v in os.environ.items() if k != "CONTENTCTL_DATABASE_URL"}
    env.update(
        CONTENTCTL_HOME=str(home),
        CONTENTCTL_INVENTORY=str(inventory),
        XDG_DATA_HOME=str(home / "xdg"),
        PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
    )
    return env


@dataclass
class Head:
    fleet: NetFleet
    env: dict[str, str]

    def serve(self) -> None:
        """The embedded server, started inside the head's namespace so that it listens on the
        head's links (the CLI reaches it on its unix socket from anywhere)."""
        self.cli("status")  # first use: the server and the schema
        self.cli("db", "stop")
        done = self.fleet.run(
            "head",
            [sys.executable, "-m", "tui.launcher", "db", "serve", "--listen", "0.0.0.0",
             "--port", str(PG_PORT)],
            self.env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = contentctl(self.env, *args)
        assert done.returncode == 0, f"contentctl {' '.join(args)}: {done.stderr}"
        return done

    def agent_url(self, host: str) -> str:
        """`host`'s own URL, pointed at the head's end of its link (a tree from before agents'
        own roles: the shared one)."""
        own = contentctl(self.env, "db", "url", "--host", host, "--show-password")
        url = (own if own.returncode == 0 else self.cli("db", "url", "--show-password")).stdout
        url = url.strip()
        head_end = self.fleet.links[host].near_addr
        before, _, after = url.partition("@")
        return f"{before}@{head_end}:{PG_PORT}/{after.split('/', 1)[1]}"

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.cli("status", "--json").stdout))

    def host(self, name: str) -> dict[str, Any]:
        for h in self.status()["hosts"]:
            if h["name"] == name:
                return dict(h)
        return {}

    def stop(self) -> None:
        contentctl(self.env, "db", "stop")


def agent_argv(host: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tui.launcher", "agent", "run", "--host", host, *extra]


def worker_env(head: Head, host: str) -> dict[str, str]:
    env = dict(head.env)
    env["CONTENTCTL_DATABASE_URL"] = head.agent_url(host)
    env["CONTENTCTL_HOME"] = str(Path(head.env["CONTENTCTL_HOME"]).parent / f"home-{host}")
    return env


def contentctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI of the tree under test (CONTENTCTL_FLEET_TREE: a bench's other tree)."""
    return helpers.contentctl(env, *args, cwd=REPO)


def start_sshd_in(fleet: NetFleet, name: str, address: str, root: Path, user_key: Path) -> Path:
    """An OpenSSH server inside namespace `name`, on `address`:22 (its own stack: port 22 is
    free there), trusting `user_key`; with this machine's uv and Python on its sessions' PATH,
    as a provisioned host has them, and uv offline (the namespace reaches no package index: it
    installs from this machine's cache). Killed with the namespace. Returns its directory."""
    from tests import sshd

    d = root / f"sshd-{name}"
    d.mkdir(parents=True)
    host_key = d / "hostkey"
    sshd._keygen(host_key)
    (d / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
    tools = os.path.dirname(shutil.which("uv") or "/usr/local/bin/uv")
    (d / "sshd_config").write_text(
        f"ListenAddress {address}:22\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        f"PidFile {d / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
        # no package index inside the namespace: uv installs from this machine's cache
        f"SetEnv PATH={tools}:/usr/local/bin:/usr/bin:/bin UV_OFFLINE=1{sshd._tls_env()}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    done = fleet.run(name, [SSHD, "-f", str(d / "sshd_config"), "-E", str(d / "log")],
                     dict(os.environ))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return d


def start_nas(fleet: NetFleet, root: Path, worker: str) -> tuple[str, Path, Path]:
    """A NAS: namespace `nas` cabled to `worker`, an sshd there serving `export` over SFTP.
    Returns (its address, the export directory, the key that logs in)."""
    from tests import sshd

    fleet.add("nas")
    link = fleet.link(worker, "nas")
    d = root / "nas"
    export = d / "export"
    export.mkdir(parents=True)
    key = d / "userkey"
    sshd._keygen(key)
    start_sshd_in(fleet, "nas", link.far_addr, d, key)
    return link.far_addr, export, key


def sshfs_then(
    address: str, export: Path, mount: Path, key: Path, then: Sequence[str]
) -> list[str]:
    """`bash -c` argv: mount `export` from the NAS at `mount`, check it is the NAS, then exec
    `then` (one invocation: `ip netns exec` gives its command a mount namespace of its own)."""
    (export / "on-the-nas").write_text("yes\n")
    return [
        "bash",
        "-c",
        f"sshfs root@{address}:{export} {mount} -o IdentityFile={key} "
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes "
        f"&& test -f {mount}/on-the-nas && exec {' '.join(then)}",
    ]
