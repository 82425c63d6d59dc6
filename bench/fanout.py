"""SSH fan-out and idempotent provisioning, against real OpenSSH servers on loopback.

    sudo uv run python bench/fanout.py [--hosts 20]

1. A command (`uname -a`, connection set-up included) on HOSTS loopback sshd's (127.0.0.2, ...)
   at once, against the same on one host, in the same run. Target: under 2x the one-host time.
2. `contentctl provision` of a host that is already provisioned (every step `ok`), wall time
   of the command. Target: under 5 s.

Needs root (the servers log in as root) and openssh-server. The last line printed is one JSON
object with the figures.
"""

from __future__ import annotations

import sys

# bench/queue.py is named after the stdlib's queue: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from control.core.inventory import HostSpec
from provisioning.ssh import SSH, fan_out
from tests.sshd import Sshd, _keygen, start_sshd


async def run_on(hosts: list[HostSpec], known: Path) -> float:
    ssh = SSH(known, accept_new=True)
    t0 = time.perf_counter()
    try:
        outcomes = await fan_out(hosts, lambda h: ssh.run(h, "uname -a"), parallel=len(hosts))
    finally:
        await ssh.close()
    elapsed = time.perf_counter() - t0
    bad = [o for o in outcomes if not o.ok]
    if bad:
        raise SystemExit(f"bench: {bad[0].host}: {bad[0].error}")
    return elapsed


def provision_twice(tmp: Path, server: Sshd, key: Path) -> tuple[float, float]:
    env = {
        **os.environ,
        "CONTENTCTL_HOME": str(tmp / "head"),
        "CONTENTCTL_INVENTORY": str(tmp / "inventory.yaml"),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp / "head-keys"),
    }
    env.pop("CONTENTCTL_DATABASE_URL", None)
    (tmp / "inventory.yaml").write_text(
        f"known_hosts: {tmp / 'known_hosts'}\nhosts:\n  b1:\n    address: {server.address}\n"
        f"    port: {server.port}\n    user: root\n    identity_file: {key}\n"
        f"    base_dir: {tmp / 'b1'}\n    keyring_backend: keyrings.alt.file.PlaintextKeyring\n"
        "    enabled_tasks: [noop]\n"
    )
    cli = [sys.executable, "-m", "tui.launcher"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [
            *cli,
            "db",
            "serve",
            "--listen",
            "127.0.0.1",
            "--port",
            str(port),
            "--advertise",
            "127.0.0.1",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    times = []
    try:
        for _ in range(2):
            t0 = time.perf_counter()
            out = subprocess.run(
                [*cli, "provision", "b1", "--yes", "--accept-new-host-keys"],
                env=env,
                capture_output=True,
                text=True,
            )
            times.append(time.perf_counter() - t0)
            if out.returncode != 0:
                raise SystemExit(f"bench: provision failed: {out.stdout}{out.stderr}")
        if "b1: no changes" not in out.stdout:
            raise SystemExit(f"bench: the second provision changed something:\n{out.stdout}")
    finally:
        pid = tmp / "b1" / "supervisor.pid"
        if pid.exists():
            subprocess.run(["sh", "-c", f"kill -TERM -$(cat {pid})"], check=False)
        subprocess.run([*cli, "db", "stop"], env=env, capture_output=True)
    return times[0], times[1]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists():
        raise SystemExit("bench/fanout.py needs root and openssh-server (sshd on loopback)")
    Path("/run/sshd").mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="contentctl-bench-fanout-"))
    key = tmp / "userkey"
    _keygen(key)
    servers: list[Sshd] = []
    try:
        for i in range(args.hosts):
            servers.append(start_sshd(f"127.0.0.{2 + i}", tmp, key))
        specs = [
            HostSpec(
                name=f"b{i}", address=s.address, port=s.port, user="root", identity_file=str(key)
            )
            for i, s in enumerate(servers)
        ]
        known = tmp / "known_hosts"
        asyncio.run(run_on(specs, known))  # record the host keys
        one = statistics.median(asyncio.run(run_on(specs[:1], known)) for _ in range(args.repeat))
        c0 = time.process_time()
        many = statistics.median(asyncio.run(run_on(specs, known)) for _ in range(args.repeat))
        client_ms = (time.process_time() - c0) / args.repeat * 1000
        print(
            f"`uname -a` over SSH: 1 host {one * 1000:.0f} ms, {args.hosts} hosts in parallel "
            f"{many * 1000:.0f} ms: {many / one:.2f}x (target < 2x)"
        )
        print(
            f"  our side: {client_ms:.0f} ms of CPU for the {args.hosts} connections; the rest "
            f"is {args.hosts} sshd's (fork, re-exec, key exchange) sharing this machine's "
            f"{os.cpu_count()} cores, which separate hosts would not"
        )
        first, second = provision_twice(tmp, servers[0], key)
        print(
            f"provision: first {first:.1f} s, again on the provisioned host {second:.1f} s "
            "(target < 5 s)"
        )
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "one_host_ms": round(one * 1000, 1),
                "hosts": args.hosts,
                "parallel_ms": round(many * 1000, 1),
                "ratio": round(many / one, 2),
                "client_cpu_ms": round(client_ms, 1),
                "provision_first_s": round(first, 1),
                "provision_again_s": round(second, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
