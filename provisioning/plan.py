"""What provisioning does to a host, as plain data: facts in, shell commands out.

Nothing here talks to a host, so the step logic (uv or conda, Linux or macOS, service manager)
is tested with plain data, and `--dry-run` prints exactly these commands.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from control.core.inventory import HostSpec
from control.core.tasktypes import extras
from provisioning import services
from provisioning.facts import HostFacts
from provisioning.layout import Layout as Layout  # re-exported: plans speak of it

# What the head ships to a worker (relative to the repository root).
SYNC_DIRS = ("control", "agent", "tui", "provisioning")  # what a worker installs and runs
SYNC_FILES = ("pyproject.toml", "uv.lock", "README.md")
SKIP_PARTS = ("__pycache__", ".pytest_cache", "__snapshots__")
MANIFEST = ".contentctl-manifest.json"
ENV_STAMP = ".venv/.contentctl-synced"
MINIFORGE = (
    "https://github.com/conda-forge/miniforge/releases/latest/download/"
    "Miniforge3-$(uname)-$(uname -m).sh"
)


@dataclass
class EnvPlan:
    manager: str
    commands: list[str] = field(default_factory=list)
    python: str = ""  # the environment's python, once it exists


def local_files(root: Path) -> dict[str, Path]:
    """The files the head ships: relative path -> local path."""
    out: dict[str, Path] = {}
    for name in SYNC_FILES:
        if (root / name).is_file():
            out[name] = root / name
    for d in SYNC_DIRS:
        for p in sorted((root / d).rglob("*")):
            if (
                p.is_file()
                and not any(part in SKIP_PARTS for part in p.parts)
                and p.suffix != ".pyc"
            ):
                out[str(p.relative_to(root))] = p
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lock_stamp(root: Path) -> str:
    """What the environment was built from: pyproject.toml and uv.lock."""
    h = hashlib.sha256()
    for name in ("pyproject.toml", "uv.lock"):
        h.update((root / name).read_bytes())
    return h.hexdigest()[:16]


def env_plan(facts: HostFacts, host: HostSpec, layout: Layout) -> EnvPlan:
    """The commands that make the host's Python environment (uv, or conda by name)."""
    manager = host.env.get("manager", "uv")
    app = shlex.quote(layout.app)
    if manager == "conda":
        name = shlex.quote(host.env["name"])
        # a path the host reported is quoted; the default is ours and needs $HOME expanded
        conda = shlex.quote(facts.conda) if facts.conda else '"$HOME"/miniforge3/bin/conda'
        cmds = []
        if not facts.conda:
            cmds += [
                f"curl -fsSL -o /tmp/miniforge.sh {MINIFORGE}",
                'bash /tmp/miniforge.sh -b -p "$HOME"/miniforge3',
            ]
        if host.env["name"] in facts.conda_envs:
            cmds.append(f"{conda} install -y -n {name} python=3.11")
        else:
            cmds.append(f"{conda} create -y -n {name} python=3.11")
        wanted = extras(host.enabled_tasks)
        target = shlex.quote(f"{layout.app}[{','.join(wanted)}]") if wanted else app
        cmds.append(f"{conda} run -n {name} python -m pip install -q {target}")
        return EnvPlan("conda", cmds, python=f"{conda} run -n {name} python")
    uv = shlex.quote(facts.uv) if facts.uv else '"$HOME"/.local/bin/uv'
    cmds = []
    if not facts.uv:
        cmds.append("python3 -m pip install --user --quiet uv")
    # the extras its task types need (a host that only downloads gets no Whisper); platform
    # markers in the lock pick mlx-whisper on Apple silicon, faster-whisper elsewhere
    flags = "".join(f" --extra {e}" for e in extras(host.enabled_tasks))
    cmds.append(f"cd {app} && {uv} sync --locked --no-dev{flags}")
    return EnvPlan("uv", cmds, python=shlex.quote(f"{layout.app}/.venv/bin/python"))


def keyring_env(host: HostSpec, layout: Layout) -> str:
    """Environment prefix selecting the host's keyring backend (no secret in it)."""
    if not host.keyring_backend:
        return ""
    return (
        f"PYTHON_KEYRING_BACKEND={shlex.quote(host.keyring_backend)} "
        f"XDG_DATA_HOME={shlex.quote(layout.secrets)} "
    )


def agent_env_vars(host: HostSpec, layout: Layout, database_url: str) -> dict[str, str]:
    """The agent's environment: no secrets (the database password is in the keychain)."""
    env = {
        "CONTENTCTL_HOME": layout.home,
        "CONTENTCTL_INVENTORY": layout.inventory,
        "CONTENTCTL_DATABASE_URL": database_url,
        "CONTENTCTL_DB_PASSWORD_IN_KEYCHAIN": "1",
    }
    if host.keyring_backend:
        env["PYTHON_KEYRING_BACKEND"] = host.keyring_backend
        env["XDG_DATA_HOME"] = layout.secrets
    return env


def agent_env(host: HostSpec, layout: Layout, database_url: str) -> str:
    """The agent's environment file (read by the supervisor script and the systemd unit)."""
    lines = ["# Written by `contentctl provision`; the database password lives in the keychain."]
    lines += [
        f"{k}={shlex.quote(v)}" for k, v in agent_env_vars(host, layout, database_url).items()
    ]
    return "\n".join(lines) + "\n"


def runner_script(host: HostSpec, layout: Layout) -> str:
    """A supervisor that keeps the agent running: restarted 2 s after it crashes; an agent that
    exits 0 (stopped on purpose) stays stopped; SIGTERM stops both (the agent hands its tasks
    back first). Its output file gets only warnings (the agent's own log file rotates) and is
    itself rotated at 10 MB, one old copy kept, each time the agent starts."""
    return f"""#!/bin/sh
# Written by `contentctl provision`: keeps the agent of {host.name} running.
cd {shlex.quote(layout.base)} || exit 1
mkdir -p home
set -a; . ./agent.env; CONTENTCTL_LOG_STDERR=warning; set +a
child=
stop() {{ rm -f supervisor.pid; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait; exit 0; }}
trap stop TERM INT
while :; do
    if [ -f home/agent.out ] && [ "$(wc -c < home/agent.out)" -gt 10485760 ]; then
        mv -f home/agent.out home/agent.out.1
    fi
    ./app/.venv/bin/contentctl agent run --host {shlex.quote(host.name)} >> home/agent.out 2>&1 &
    child=$!
    wait $child
    code=$?
    [ "$code" -eq 0 ] && break   # stopped on purpose (`agent stop`, SIGTERM): stay stopped
    sleep 2                      # crashed: start it again
done
rm -f supervisor.pid
"""


SERVICE_KINDS = ("launchd", "systemd-user", "systemd-system", "supervisor")


def service_kind(facts: HostFacts, host: HostSpec) -> str:
    """How the agent is kept running: the inventory's `service:`, else launchd on macOS, a
    systemd user unit where the user's systemd answers, else the supervisor script."""
    if host.service != "auto":
        return host.service
    if facts.os == "Darwin":
        return "launchd"
    if facts.systemd_user:
        return "systemd-user"
    return "supervisor"


@dataclass(frozen=True)
class ServiceFile:
    path: str
    text: str


def service_file(
    kind: str, facts: HostFacts, host: HostSpec, layout: Layout, env: dict[str, str]
) -> ServiceFile:
    """The file that makes the agent a service of `kind`, and where it goes."""
    paths = layout
    home = facts.home or "~"
    if kind == "launchd":
        plist = services.launchd_plist(host, paths, env).decode()
        return ServiceFile(services.plist_path(home, host), plist)
    if kind in ("systemd-user", "systemd-system"):
        system = kind == "systemd-system"
        unit = services.systemd_unit(host, paths, system=system, user=facts.user)
        return ServiceFile(services.unit_path(home, host, system), unit)
    return ServiceFile(layout.runner, runner_script(host, layout))


def start_commands(kind: str, facts: HostFacts, host: HostSpec, layout: Layout) -> list[str]:
    """Install (load, enable) and (re)start the agent's service of `kind`."""
    if kind == "launchd":
        plist = services.plist_path(str(facts.home), host)
        return services.launchd_install(host, facts, plist)
    if kind in ("systemd-user", "systemd-system"):
        return services.systemd_install(host, facts, kind == "systemd-system")
    runner = shlex.quote(layout.runner)
    pidfile = shlex.quote(layout.pidfile)
    return [
        f"cd {shlex.quote(layout.base)} && (setsid nohup sh {runner} > /dev/null 2>&1 "
        f"< /dev/null & echo $! > {pidfile})"
    ]


def control_commands(
    kind: str, facts: HostFacts, host: HostSpec, layout: Layout, action: str
) -> list[str]:
    """`agent start|stop|restart` through the installed manager."""
    if kind == "launchd":
        plist = services.plist_path(str(facts.home), host)
        return services.launchd_control(host, facts, plist, action)
    if kind in ("systemd-user", "systemd-system"):
        return services.systemd_control(host, kind == "systemd-system", action)
    if action == "stop":
        return [stop_command(layout)]
    if action == "restart":
        return [stop_command(layout), *start_commands(kind, facts, host, layout)]
    return start_commands(kind, facts, host, layout)


def stop_command(layout: Layout) -> str:
    pidfile = shlex.quote(layout.pidfile)
    return (
        f"if [ -f {pidfile} ]; then pid=$(cat {pidfile}); kill -TERM -$pid 2>/dev/null; "
        "for i in $(seq 1 60); do kill -0 $pid 2>/dev/null || break; sleep 0.5; done; "
        f"kill -KILL -$pid 2>/dev/null; rm -f {pidfile}; echo stopped; else echo not-running; fi"
    )
