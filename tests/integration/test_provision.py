"""Provisioning over real SSH: OpenSSH on 127.0.0.2, 127.0.0.3, ... with keys made per run, the
embedded database served on loopback TCP, real agents started on the "hosts"."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioning.plan import local_files
from tests.conftest import kill_tree
from tests.helpers import contentctl, free_port
from tests.sshd import Sshd, start_sshd
from tests.sshd import sshd_factory as sshd_factory  # the fixture

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent.parent
NAS_PASSWORD = "nas-Pw-7c1f9e2b"


@pytest.fixture(autouse=True)
def stop_provisioned_agents(tmp_path: Path) -> Iterator[None]:
    """Whatever agent supervisor provisioning started on a test host is stopped by its pid."""
    yield
    for pidfile in tmp_path.glob("host*/supervisor.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().strip())
            os.killpg(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
    for pidfile in tmp_path.glob("host*/supervisor.pid"):
        with contextlib.suppress(ValueError, OSError):
            kill_tree(int(pidfile.read_text().strip()))


@pytest.fixture
def head(tmp_path: Path, own_pg_home: Path) -> Iterator[dict[str, str]]:
    """The head's environment: its own embedded database served on 127.0.0.1, a file keyring."""
    env = {
        **os.environ,
        "CONTENTCTL_HOME": str(own_pg_home),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "head-keys"),
        "CONTENTCTL_INVENTORY": str(tmp_path / "inventory.yaml"),
    }
    env.pop("CONTENTCTL_DATABASE_URL", None)
    yield env
    subprocess.run(
        [sys.executable, "-m", "tui.launcher", "db", "stop"],
        env=env,
        capture_output=True,
        timeout=60,
    )


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return contentctl(env, *args, timeout=600)


def write_ssh_inventory(
    env: dict[str, str],
    tmp_path: Path,
    user_key: Path,
    servers: list[Sshd],
    extra_hosts: str = "",
    nas: bool = False,
) -> None:
    hosts = "".join(
        f"  h{i + 1}:\n    address: {s.address}\n    port: {s.port}\n    user: root\n"
        f"    identity_file: {user_key}\n    base_dir: {tmp_path / f'host{i + 1}'}\n"
        "    keyring_backend: keyrings.alt.file.PlaintextKeyring\n"
        "    enabled_tasks: [noop]\n"
        for i, s in enumerate(servers)
    )
    Path(env["CONTENTCTL_INVENTORY"]).write_text(
        f"known_hosts: {tmp_path / 'known_hosts'}\n"
        + ("nas: {url: 'smb://nas.local/content', user: signal4}\n" if nas else "")
        + f"hosts:\n{hosts}{extra_hosts}"
    )


def serve_db(head: dict[str, str]) -> None:
    """The head's embedded database on loopback TCP, as `db serve` makes it for agents."""
    port = str(free_port())
    served = run(
        head, "db", "serve", "--listen", "127.0.0.1", "--port", port, "--advertise", "127.0.0.1"
    )
    assert served.returncode == 0, served.stderr


def source_tree(tmp_path: Path) -> Path:
    """A copy of what the head ships, so the test can change a file without touching the repo."""
    src = tmp_path / "source"
    for rel, path in local_files(REPO).items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, src / rel)
    return src


class PsWatch:
    """Samples every process's command line while provisioning runs."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            self.seen.update(out.splitlines())
            time.sleep(0.05)

    def __enter__(self) -> PsWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_provision_two_hosts_then_nothing_changes_then_one_file_syncs(
    head: dict[str, str],
    tmp_path: Path,
    sshd_factory: tuple[Path, list[Sshd]],
) -> None:
    user_key, servers = sshd_factory
    for addr in ("127.0.0.2", "127.0.0.3"):
        servers.append(start_sshd(addr, tmp_path, user_key))
    write_ssh_inventory(head, tmp_path, user_key, servers, nas=True)
    serve_db(head)
    subprocess.run(
        [sys.executable, "-m", "keyring", "set", "contentctl", "nas_password"],
        input=NAS_PASSWORD + "\n",
        env=head,
        text=True,
        check=True,
    )
    src = source_tree(tmp_path)
    with PsWatch() as ps:
        first = run(
            head, "provision", "h1", "h2", "--yes", "--accept-new-host-keys", "--source", str(src)
        )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "h1: changed" in first.stdout and "h2: changed" in first.stdout
    # both agents heartbeat with the shipped code and run noop tasks
    enq = run(head, "enqueue", "noop", "--count", "20", "--json")
    assert enq.returncode == 0, enq.stderr
    status = _wait_status(head, lambda s: s["queue"]["totals"]["succeeded"] >= 20)
    by_host = {h["name"]: h for h in status["hosts"]}
    assert by_host["h1"]["state"] == "online" and by_host["h2"]["state"] == "online"

    again = run(head, "provision", "h1", "h2", "--yes", "--source", str(src))
    assert again.returncode == 0, again.stderr
    assert "h1: no changes" in again.stdout and "h2: no changes" in again.stdout, again.stdout

    (src / "agent" / "handlers.py").write_text(
        (src / "agent" / "handlers.py").read_text() + "\n# changed on the head\n"
    )
    # rollout: drain, ship the one changed file, restart, new code heartbeats, undrain
    third = run(head, "rollout", "h1", "--source", str(src))
    assert third.returncode == 0, third.stdout + third.stderr
    steps = {ln.split()[1]: ln for ln in third.stdout.splitlines() if ln.startswith("h1 ")}
    assert "sent 1 file(s)" in steps["code"], third.stdout
    assert " ok " in steps["drain"] and " ok " in steps["undrain"], third.stdout
    assert "restarted (supervisor), heartbeating" in steps["start"], third.stdout
    status = _wait_status(
        head, lambda s: {h["name"]: h for h in s["hosts"]}["h1"]["state"] == "online"
    )
    remote = tmp_path / "host1" / "app" / "agent" / "handlers.py"
    assert remote.read_text().endswith("# changed on the head\n")

    # the NAS password: in the worker's keyring, nowhere else; the database password likewise
    from urllib.parse import unquote, urlsplit

    shown = run(head, "db", "url", "--host", "h1", "--show-password")  # h1's own role
    db_password = unquote(urlsplit(shown.stdout.strip()).password or "")
    assert db_password
    worker_env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "host1" / "secrets"),
    }
    got = subprocess.run(
        [sys.executable, "-m", "keyring", "get", "contentctl", "nas_password"],
        env=worker_env,
        capture_output=True,
        text=True,
    )
    assert got.stdout.strip() == NAS_PASSWORD
    assert not [line for line in ps.seen if NAS_PASSWORD in line or db_password in line]
    for out in (first, again, third):
        assert NAS_PASSWORD not in out.stdout + out.stderr
        assert db_password not in out.stdout + out.stderr
    assert NAS_PASSWORD not in Path(head["CONTENTCTL_INVENTORY"]).read_text()
    for base in (tmp_path / "host1", tmp_path / "host2"):
        for f in [*(base / "home").rglob("*"), base / "agent.env", base / "inventory.yaml"]:
            if f.is_file():
                assert NAS_PASSWORD not in f.read_text(errors="replace"), f
        env_text = (base / "agent.env").read_text()
        assert db_password not in env_text and "@127.0.0.1" in env_text
    stop = run(head, "agent", "stop", "h1", "h2", "--timeout", "30")
    assert stop.returncode == 0, stop.stderr


def test_host_keys_unknown_refused_then_accepted_changed_refused_unreachable_fast(
    head: dict[str, str],
    tmp_path: Path,
    sshd_factory: tuple[Path, list[Sshd]],
) -> None:
    user_key, servers = sshd_factory
    servers.append(start_sshd("127.0.0.2", tmp_path, user_key))
    dead = (
        f"  dead:\n    address: 127.0.0.9\n    port: {free_port()}\n    user: root\n"
        f"    identity_file: {user_key}\n    base_dir: {tmp_path / 'dead'}\n"
    )
    write_ssh_inventory(head, tmp_path, user_key, servers, extra_hosts=dead)
    serve_db(head)

    refused = run(head, "provision", "h1", "--dry-run")
    assert refused.returncode == 1
    assert (
        "unknown host key SHA256:" in refused.stderr and "--accept-new-host-keys" in refused.stderr
    )

    t0 = time.monotonic()
    mixed = run(head, "provision", "h1", "dead", "--dry-run", "--accept-new-host-keys")
    assert mixed.returncode == 1
    assert "h1: would change" in mixed.stdout  # the good host went through
    [dead_line] = [ln for ln in mixed.stderr.splitlines() if ln.startswith("dead")]
    assert "unreachable" in dead_line
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "host1" / "app").exists()  # a dry run changes nothing

    servers[0].new_host_key()
    changed = run(head, "provision", "h1", "--dry-run", "--accept-new-host-keys")
    assert changed.returncode == 1
    assert "host key changed" in changed.stderr and "refusing" in changed.stderr


def _wait_status(
    env: dict[str, str], cond: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    import json

    deadline = time.monotonic() + timeout
    while True:
        out = run(env, "status", "--json")
        snap = json.loads(out.stdout) if out.returncode == 0 else None
        if snap and cond(snap):
            return snap
        if time.monotonic() > deadline:
            raise AssertionError(f"status never matched: {out.stdout[-2000:]} {out.stderr}")
        time.sleep(0.5)


async def test_provision_from_the_dashboard_plan_then_apply(
    head: dict[str, str],
    tmp_path: Path,
    sshd_factory: tuple[Path, list[Sshd]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from textual.widgets import DataTable, RichLog

    from control.core.inventory import load
    from control.core.settings import DatabaseTarget
    from control.head.api import ControlPlane
    from tui.app import Dashboard

    user_key, servers = sshd_factory
    servers.append(start_sshd("127.0.0.4", tmp_path, user_key))
    write_ssh_inventory(head, tmp_path, user_key, servers)
    serve_db(head)
    known = run(head, "provision", "h1", "--dry-run", "--accept-new-host-keys")
    assert known.returncode == 0, known.stderr  # the host key is recorded; nothing changed
    for key in ("CONTENTCTL_HOME", "PYTHON_KEYRING_BACKEND", "XDG_DATA_HOME"):
        monkeypatch.setenv(key, head[key])
    monkeypatch.delenv("CONTENTCTL_DATABASE_URL", raising=False)
    plane = ControlPlane(DatabaseTarget(None), load(Path(head["CONTENTCTL_INVENTORY"])))
    app = Dashboard(plane, refresh_s=0.5)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("5")
        log = app.screen.query_one("#steps", RichLog)

        def shown() -> str:
            return "\n".join(line.text for line in log.lines)

        await pilot.press("p")
        for _ in range(300):
            if "h1: would change" in shown():
                break
            await pilot.pause(0.1)
        assert "h1: would change" in shown(), shown()
        assert not (tmp_path / "host1" / "app").exists()  # the plan changed nothing
        await pilot.press("a")
        await pilot.pause(0.2)
        await pilot.press("y")
        for _ in range(1200):
            if "h1: changed" in shown() or "h1: failed" in shown():
                break
            await pilot.pause(0.1)
        assert "h1: changed" in shown(), shown()
        assert "started (supervisor), heartbeating" in shown()

        # stopped through the database, the supervisor lets it be; `s` starts it over SSH
        stopped = run(head, "agent", "stop", "h1", "--timeout", "30")
        assert stopped.returncode == 0, stopped.stderr
        for _ in range(100):
            if not (tmp_path / "host1" / "supervisor.pid").exists():
                break
            await pilot.pause(0.1)
        assert not (tmp_path / "host1" / "supervisor.pid").exists()
        await pilot.press("1")
        hosts = app.screen.query_one("#hosts", DataTable)
        for _ in range(100):
            if str(hosts.get_cell("h1", "state")) == "offline":
                break
            await pilot.pause(0.1)
        hosts.move_cursor(row=hosts.get_row_index("h1"))
        await pilot.press("s")
        for _ in range(600):
            if str(hosts.get_cell("h1", "state")) == "online":
                break
            await pilot.pause(0.1)
        assert str(hosts.get_cell("h1", "state")) == "online"


def test_a_dry_run_never_runs_shell_words_from_the_inventory(
    head: dict[str, str],
    tmp_path: Path,
    sshd_factory: tuple[Path, list[Sshd]],
) -> None:
    """The probe: a base_dir that is a shell command. Before, `provision --dry-run` ran it (the
    keychain check used the environment's python path unquoted)."""
    user_key, servers = sshd_factory
    servers.append(start_sshd("127.0.0.2", tmp_path, user_key))
    pwned = tmp_path / "PWNED"
    base = f"{tmp_path}/host 1/x$(touch {pwned})`touch {pwned}`;touch {pwned}"
    host = (
        f"  evil:\n    address: {servers[0].address}\n    port: {servers[0].port}\n"
        f"    user: root\n    identity_file: {user_key}\n    base_dir: {json.dumps(base)}\n"
        "    keyring_backend: keyrings.alt.file.PlaintextKeyring\n"
    )
    Path(head["CONTENTCTL_INVENTORY"]).write_text(
        f"known_hosts: {tmp_path / 'known_hosts'}\nhosts:\n{host}"
    )
    serve_db(head)  # a database password: the dry run checks the worker's keychain for it
    out = run(head, "provision", "evil", "--dry-run", "--accept-new-host-keys")
    assert "evil: would change" in out.stdout, out.stdout + out.stderr
    assert not pwned.exists()
    assert not Path(base).exists()  # and a dry run creates nothing


def test_a_dry_run_plans_before_db_serve_and_all_says_what_is_missing(
    head: dict[str, str],
    tmp_path: Path,
    sshd_factory: tuple[Path, list[Sshd]],
) -> None:
    """Before: `provision --dry-run` refused until `db serve` had run, and `provision --all`
    with no SSH host said "...or give --all"."""
    user_key, servers = sshd_factory
    servers.append(start_sshd("127.0.0.2", tmp_path, user_key))
    write_ssh_inventory(head, tmp_path, user_key, servers)
    plan = run(head, "provision", "h1", "--dry-run", "--accept-new-host-keys")
    assert plan.returncode in (0, 1), plan.stderr  # a plan (changes to make), not a refusal
    assert "db serve` first" in plan.stderr and "h1: would change" in plan.stdout
    assert not (tmp_path / "host1" / "agent.env").exists()  # nothing changed
    Path(head["CONTENTCTL_INVENTORY"]).write_text("hosts: {}\n")
    none = run(head, "provision", "--all", "--dry-run")
    assert none.returncode == 2 and "no enabled host with transport: ssh" in none.stderr
