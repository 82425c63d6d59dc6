"""Service files as data, checked by the real parsers: plistlib reads the LaunchAgent back,
`systemd-analyze verify` (Debian's systemd) checks the unit."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest

from control.core.inventory import HostSpec
from provisioning import services
from provisioning.layout import Layout
from tests.helpers import host_facts

HOSTILE_BASE = "/srv/con tent/$(touch PWNED)`id`;%h"


def _host() -> HostSpec:
    return HostSpec(name="mac-7", address="10.0.0.7")


def test_the_launch_agent_has_what_launchd_needs_and_no_secret() -> None:
    paths = Layout(HOSTILE_BASE)
    env = {"CONTENTCTL_HOME": f"{HOSTILE_BASE}/home", "CONTENTCTL_DB_PASSWORD_IN_KEYCHAIN": "1"}
    doc = plistlib.loads(services.launchd_plist(_host(), paths, env))
    assert doc["Label"] == "com.contentctl.agent.mac-7"
    assert doc["ProgramArguments"] == [
        f"{HOSTILE_BASE}/app/.venv/bin/contentctl",
        "agent",
        "run",
        "--host",
        "mac-7",
    ]  # one argument each, the shell never sees them
    assert doc["WorkingDirectory"] == HOSTILE_BASE
    assert doc["RunAtLoad"] is True
    assert doc["KeepAlive"] == {"SuccessfulExit": False}  # `agent stop` stays stopped
    assert doc["ThrottleInterval"] >= 5
    assert (
        doc["StandardOutPath"]
        == doc["StandardErrorPath"]
        == f"{HOSTILE_BASE}/home/logs/service.out"
    )
    assert doc["EnvironmentVariables"]["CONTENTCTL_LOG_STDERR"] == "warning"
    assert "PASSWORD=" not in str(doc["EnvironmentVariables"]).upper().replace("IN_KEYCHAIN", "")


def test_the_domain_is_gui_with_a_session_else_user() -> None:
    assert services.launchd_domain(host_facts(uid=501, gui_session=True)) == "gui/501"
    assert services.launchd_domain(host_facts(uid=501, gui_session=False)) == "user/501"
    cmds = services.launchd_install(_host(), host_facts(uid=501), "/Users/a b/x.plist")
    assert cmds[1] == "launchctl bootstrap user/501 '/Users/a b/x.plist'"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs Debian's systemd")
@pytest.mark.parametrize("system", [False, True])
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path, system: bool) -> None:
    base = tmp_path / "con tent $x %h"
    exe = base / "app" / ".venv" / "bin" / "contentctl"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (base / "agent.env").write_text("CONTENTCTL_HOME=/x\n")
    text = services.systemd_unit(_host(), Layout(str(base)), system=system, user="nobody")
    assert "Restart=on-failure" in text and "KillSignal=SIGTERM" in text
    assert f"TimeoutStopSec={services.STOP_TIMEOUT_S}" in text
    assert services.STOP_TIMEOUT_S > services.GRACE_S
    assert ("User=nobody" in text) is system
    unit = tmp_path / services.unit_name(_host())
    unit.write_text(text)
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "warning"}
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        env=env,
    )
    problems = [
        ln
        for ln in (out.stdout + out.stderr).splitlines()
        if str(unit.name) in ln or "contentctl" in ln
    ]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr
