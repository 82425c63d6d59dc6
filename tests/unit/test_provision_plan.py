"""Provisioning's step logic as plain data: facts in, commands out (what --dry-run prints)."""

from __future__ import annotations

from pathlib import Path

from control.core.inventory import HostSpec
from provisioning.facts import HostFacts
from provisioning.plan import (
    Layout,
    agent_env,
    control_commands,
    env_plan,
    runner_script,
    service_kind,
    start_commands,
)
from tests.helpers import host_facts

LAYOUT = Layout("/home/signal4/contentctl")


def _host(**kw: object) -> HostSpec:
    return HostSpec(name="mac-7", address="10.0.0.7", **kw)


def test_uv_installed_if_missing_then_synced_against_the_lock() -> None:
    plan = env_plan(host_facts(uv=None), _host(), LAYOUT)
    assert plan.commands == [
        "python3 -m pip install --user --quiet uv",
        'cd /home/signal4/contentctl/app && "$HOME"/.local/bin/uv sync --locked --no-dev'
        " --extra audio --extra transcribe",
    ]
    present = env_plan(host_facts(uv="/usr/bin/uv"), _host(), LAYOUT)
    assert present.commands == [
        "cd /home/signal4/contentctl/app && /usr/bin/uv sync --locked --no-dev"
        " --extra audio --extra transcribe"
    ]


def test_a_host_gets_the_extras_of_its_task_types_only() -> None:
    """A downloader gets no Whisper and no bundled ffmpeg; a transcriber gets Whisper."""
    sync = host_facts(uv="/usr/bin/uv")
    downloader = env_plan(sync, _host(enabled_tasks=("download_youtube", "noop")), LAYOUT)
    assert downloader.commands[-1].endswith("sync --locked --no-dev")
    transcriber = env_plan(sync, _host(enabled_tasks=("transcribe", "stitch")), LAYOUT)
    assert transcriber.commands[-1].endswith("sync --locked --no-dev --extra transcribe")
    conda = env_plan(
        host_facts(conda="/opt/conda"),
        _host(env={"manager": "conda", "name": "e"}, enabled_tasks=("extract_audio",)),
        LAYOUT,
    )
    assert conda.commands[-1].endswith("pip install -q '/home/signal4/contentctl/app[audio]'")


def test_conda_installs_miniforge_when_missing_and_creates_or_updates_the_named_env() -> None:
    host = _host(env={"manager": "conda", "name": "content-processing"})
    fresh = env_plan(host_facts(conda=None), host, LAYOUT)
    assert fresh.commands[0].startswith(
        "curl -fsSL -o /tmp/miniforge.sh https://github.com/conda-forge/miniforge"
    )
    assert 'bash /tmp/miniforge.sh -b -p "$HOME"/miniforge3' in fresh.commands
    assert (
        '"$HOME"/miniforge3/bin/conda create -y -n content-processing python=3.11' in fresh.commands
    )
    existing = env_plan(
        host_facts(conda="/opt/conda/bin/conda", conda_envs=["content-processing"]), host, LAYOUT
    )
    assert not any("miniforge" in c for c in existing.commands)
    assert "/opt/conda/bin/conda install -y -n content-processing python=3.11" in existing.commands
    assert existing.python == "/opt/conda/bin/conda run -n content-processing python"


def test_service_manager_follows_the_platform_unless_the_inventory_says() -> None:
    assert service_kind(host_facts(os="Darwin"), _host()) == "launchd"
    assert service_kind(host_facts(os="Linux", systemd_user=True), _host()) == "systemd-user"
    linux = host_facts(os="Linux", systemd_user=False)
    assert service_kind(linux, _host()) == "supervisor"
    assert service_kind(linux, _host(service="systemd-system")) == "systemd-system"
    cmds = start_commands("supervisor", linux, _host(), LAYOUT)
    assert "setsid nohup sh /home/signal4/contentctl/run-agent.sh" in cmds[0]
    facts = HostFacts("/b", os="Linux", user="signal4", linger=False)
    user = start_commands("systemd-user", facts, _host(), LAYOUT)
    assert user == [
        "loginctl enable-linger signal4",
        "systemctl --user daemon-reload",
        "systemctl --user enable contentctl-agent-mac-7.service",
        "systemctl --user restart contentctl-agent-mac-7.service",
    ]
    assert control_commands("systemd-system", facts, _host(), LAYOUT, "stop") == [
        "systemctl stop contentctl-agent-mac-7.service"
    ]
    mac = host_facts(os="Darwin", uid=501, gui_session=False, home="/Users/signal4")
    assert control_commands("launchd", mac, _host(), LAYOUT, "restart") == [
        "launchctl kickstart -k user/501/com.contentctl.agent.mac-7"
    ]


def test_the_agent_env_carries_no_password() -> None:
    text = agent_env(
        _host(keyring_backend="keyrings.alt.file.PlaintextKeyring"),
        LAYOUT,
        "postgresql://contentctl@head:5432/contentctl",
    )
    assert "CONTENTCTL_DATABASE_URL=postgresql://contentctl@head:5432/contentctl" in text
    assert "PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring" in text
    script = runner_script(_host(), LAYOUT)
    assert "agent run --host mac-7" in script and "trap stop TERM INT" in script


HOSTILE_BASE = "/srv/x y/$(touch /tmp/PWNED)`id`;rm -rf ~ #"


def test_every_command_keeps_a_hostile_base_dir_one_quoted_word() -> None:
    """The probe: an inventory base_dir full of shell syntax. Every command the plan builds
    carries it as one word, so the shell runs none of it."""
    import shlex

    from provisioning.facts import parse_facts
    from provisioning.plan import stop_command

    layout = Layout(HOSTILE_BASE)
    host = _host(base_dir=HOSTILE_BASE, env={"manager": "conda", "name": "e; id"})
    commands = [
        *env_plan(host_facts(uv="/opt/my uv/uv"), _host(), layout).commands,
        *env_plan(host_facts(conda="/opt/$(x)/conda"), host, layout).commands,
        env_plan(host_facts(), _host(), layout).python,
        *start_commands("supervisor", host_facts(os="Linux"), host, layout),
        stop_command(layout),
        runner_script(host, layout),
    ]
    for cmd in commands:
        words = shlex.split(cmd, comments=True)
        for word in words:
            if "PWNED" in word:
                assert HOSTILE_BASE in word, (word, cmd)
        assert not any(w in ("id", "-rf", "~") for w in words), cmd
    facts = parse_facts("h", 'Welcome!\n{"os": "Linux"\n{"base_dir": "/b", "os": "Linux"}\n')
    assert facts["base_dir"] == "/b"


def test_the_supervisor_rotates_its_output_file(tmp_path: Path) -> None:
    """The supervisor's output file is rotated at 10 MB when the agent (re)starts; run the
    script for real with a stand-in agent that exits 0 at once."""
    import subprocess

    base = tmp_path / "base dir"
    (base / "home").mkdir(parents=True)
    (base / "agent.env").write_text("X=1\n")
    agent = base / "app" / ".venv" / "bin" / "contentctl"
    agent.parent.mkdir(parents=True)
    agent.write_text("#!/bin/sh\necho started\nexit 0\n")
    agent.chmod(0o755)
    big = base / "home" / "agent.out"
    big.write_bytes(b"x" * (10 * 1024 * 1024 + 1))
    script = base / "run-agent.sh"
    script.write_text(runner_script(_host(), Layout(str(base))))
    subprocess.run(["sh", str(script)], check=True, timeout=30)
    assert (base / "home" / "agent.out.1").stat().st_size > 10 * 1024 * 1024
    assert big.read_text() == "started\n"
