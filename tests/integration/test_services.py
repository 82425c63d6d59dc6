"""Provisioning a Mac (launchd) and a systemd Linux box, end to end over real SSH, against
shims (tests/shims.py) that stand in for launchctl, security, uname, systemctl and loginctl:
this machine runs neither macOS nor systemd as PID 1. The shims keep state the way launchd and
systemd do and really start the agent the service file describes, so the agent heartbeats."""

from __future__ import annotations

import json
import plistlib
from pathlib import Path

import pytest

from tests import shims
from tests.integration.test_provision import (
    head as head,  # the fixtures
)
from tests.integration.test_provision import (
    run,
    serve_db,
    source_tree,
)
from tests.integration.test_provision import (
    stop_provisioned_agents as stop_provisioned_agents,
)
from tests.sshd import Sshd, start_sshd
from tests.sshd import sshd_factory as sshd_factory

pytestmark = pytest.mark.slow


def _inventory(head: dict[str, str], tmp_path: Path, user_key: Path, s: Sshd, extra: str) -> None:
    Path(head["CONTENTCTL_INVENTORY"]).write_text(
        f"known_hosts: {tmp_path / 'known_hosts'}\nhosts:\n"
        f"  mac-1:\n    address: {s.address}\n    port: {s.port}\n    user: root\n"
        f"    identity_file: {user_key}\n    base_dir: {tmp_path / 'mac 1'}\n"
        "    enabled_tasks: [noop]\n" + extra
    )


@pytest.fixture
def shim_state(tmp_path: Path):  # type: ignore[no-untyped-def]
    state = tmp_path / "shim-state"
    yield state
    shims.stop_all(state)


def shim_host(
    head: dict[str, str],
    tmp_path: Path,
    factory: tuple[Path, list[Sshd]],
    state: Path,
    *,
    kind: str,
    address: str,
    keyring: bool = True,
) -> Path:
    """A loopback sshd host whose PATH puts the `kind` shims first and whose HOME is the
    test's; the inventory names it mac-1; the head serves its database. Returns HOME."""
    user_key, servers = factory
    home = tmp_path / f"{kind}-home"
    home.mkdir()
    shims.install(tmp_path / "shims", state, kind)
    server = start_sshd(address, tmp_path, user_key, path_first=tmp_path / "shims", home=home)
    servers.append(server)
    backend = "    keyring_backend: keyrings.alt.file.PlaintextKeyring\n" if keyring else ""
    _inventory(head, tmp_path, user_key, server, backend)
    serve_db(head)
    return home


def test_a_headless_mac_gets_a_launch_agent_in_its_user_domain(
    head: dict[str, str],
    tmp_path: Path,
    sshd_factory: tuple[Path, list[Sshd]],
    shim_state: Path,
) -> None:
    home = shim_host(head, tmp_path, sshd_factory, shim_state, kind="macos", address="127.0.0.4")
    src = source_tree(tmp_path)

    plan = run(
        head, "provision", "mac-1", "--dry-run", "--accept-new-host-keys", "--source", str(src)
    )
    assert "launchd:" in plan.stdout and "new file:" in plan.stdout, plan.stdout + plan.stderr
    assert not (home / "Library").exists()  # a dry run writes nothing

    first = run(head, "provision", "mac-1", "--yes", "--source", str(src), "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    [report] = json.loads(first.stdout)
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["facts"]["detail"].startswith("Darwin arm64 (Apple silicon)")
    assert steps["agent service"]["detail"].startswith("launchd:")
    assert "started (launchd), heartbeating" in steps["start"]["detail"]

    plist_file = home / "Library" / "LaunchAgents" / "com.contentctl.agent.mac-1.plist"
    doc = plistlib.loads(plist_file.read_bytes())
    assert doc["ProgramArguments"][1:] == ["agent", "run", "--host", "mac-1"]
    assert doc["KeepAlive"] == {"SuccessfulExit": False} and doc["RunAtLoad"] is True
    assert "password" not in json.dumps(doc["EnvironmentVariables"]).lower().replace(
        "password_in_keychain", ""
    )
    called = shims.calls(shim_state)
    # no GUI session: bootstrapped into user/<uid>, never gui/<uid>
    assert ["launchctl", "bootstrap", "user/0", str(plist_file)] in called
    assert not any(c[:2] == ["launchctl", "bootstrap"] and c[2].startswith("gui/") for c in called)

    again = run(head, "provision", "mac-1", "--yes", "--source", str(src))
    assert again.returncode == 0 and "mac-1: no changes" in again.stdout, again.stdout

    stopped = run(head, "agent", "stop", "mac-1", "--json")
    assert stopped.returncode == 0, stopped.stderr
    started = run(head, "agent", "start", "mac-1", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    assert json.loads(started.stdout)[0]["outcome"] == "started (launchd)"


def test_a_locked_keychain_on_a_headless_mac_is_a_clear_refusal(
    head: dict[str, str],
    tmp_path: Path,
    sshd_factory: tuple[Path, list[Sshd]],
    shim_state: Path,
) -> None:
    shim_host(  # no keyring_backend named
        head, tmp_path, sshd_factory, shim_state, kind="macos", address="127.0.0.5", keyring=False
    )
    (shim_state / "keychain_locked").touch()
    out = run(head, "provision", "mac-1", "--yes", "--accept-new-host-keys")
    assert out.returncode == 1
    [line] = [ln for ln in out.stderr.splitlines() if "keychain" in ln]
    assert "locked" in line and "keyring_backend" in line


def test_a_linux_box_with_systemd_gets_a_user_unit_and_linger(
    head: dict[str, str],
    tmp_path: Path,
    sshd_factory: tuple[Path, list[Sshd]],
    shim_state: Path,
) -> None:
    home = shim_host(head, tmp_path, sshd_factory, shim_state, kind="systemd", address="127.0.0.6")
    src = source_tree(tmp_path)
    first = run(head, "provision", "mac-1", "--yes", "--accept-new-host-keys", "--source", str(src))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "started (systemd-user), heartbeating" in first.stdout
    unit = home / ".config" / "systemd" / "user" / "contentctl-agent-mac-1.service"
    assert "Restart=on-failure" in unit.read_text()
    called = shims.calls(shim_state)
    assert ["loginctl", "enable-linger", "root"] in called
    assert ["systemctl", "--user", "enable", "contentctl-agent-mac-1.service"] in called
    again = run(head, "provision", "mac-1", "--yes", "--source", str(src))
    assert "mac-1: no changes" in again.stdout, again.stdout
    assert sum(c[:2] == ["loginctl", "enable-linger"] for c in shims.calls(shim_state)) == 1
