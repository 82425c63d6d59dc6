"""The agent as a service that comes back after a reboot, as plain data: the launchd plist
(macOS), the systemd unit (Linux, user or system), and the commands that install, start, stop
and restart it. Nothing here talks to a host; provisioning writes these files and runs these
commands, and `--dry-run` shows them.

- launchd: a LaunchAgent in `~/Library/LaunchAgents`, loaded in the `gui/<uid>` domain when the
  user has a GUI session, else `user/<uid>` (a headless Mac after a reboot, reached over SSH).
  `KeepAlive: {SuccessfulExit: false}` restarts a crashed agent but leaves one stopped on
  purpose (`agent stop` exits 0) stopped.
- systemd: a user unit with `loginctl enable-linger` (it starts at boot with nobody logged in),
  or a system unit with `User=` when the inventory says `service: system`. `Restart=on-failure`
  for the same reason; `TimeoutStopSec` is longer than the agent's grace, so running tasks go
  back to the queue before systemd kills anything.
- The supervisor script (`run-agent.sh`) stays the fallback where neither runs.

The service's own output file only gets what the agent cannot log itself (a crash at start-up):
the agent logs to its rotating file and, under a service, keeps stderr to warnings.
"""

from __future__ import annotations

import plistlib
import shlex

from control.core.inventory import HostSpec
from provisioning.facts import HostFacts
from provisioning.layout import Layout

LABEL_PREFIX = "com.contentctl.agent"
GRACE_S = 10  # the agent's default --grace
STOP_TIMEOUT_S = GRACE_S + 20  # longer than the grace: tasks are handed back, never killed
RESTART_S = 5
THROTTLE_S = 10
# What the service's environment says beyond agent.env: log warnings only to stderr (the
# agent's rotating file has the rest), so the service's output file does not grow forever.
SERVICE_ENV = {"CONTENTCTL_LOG_STDERR": "warning"}


def label(host: HostSpec) -> str:
    return f"{LABEL_PREFIX}.{host.name}"


def unit_name(host: HostSpec) -> str:
    return f"contentctl-agent-{host.name}.service"


def plist_path(home: str, host: HostSpec) -> str:
    return f"{home}/Library/LaunchAgents/{label(host)}.plist"


def unit_path(home: str, host: HostSpec, system: bool) -> str:
    if system:
        return f"/etc/systemd/system/{unit_name(host)}"
    return f"{home}/.config/systemd/user/{unit_name(host)}"


def argv(host: HostSpec, paths: Layout) -> list[str]:
    return [paths.contentctl, "agent", "run", "--host", host.name]


def launchd_plist(host: HostSpec, paths: Layout, env: dict[str, str]) -> bytes:
    """The LaunchAgent, written with plistlib (so any path or value is data, never markup).
    `env` is the agent's environment without secrets (the database password and the NAS
    password live in the keychain)."""
    doc = {
        "Label": label(host),
        "ProgramArguments": argv(host, paths),
        "WorkingDirectory": paths.base,
        "EnvironmentVariables": {**env, **SERVICE_ENV},
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": THROTTLE_S,
        "ExitTimeOut": STOP_TIMEOUT_S,
        "ProcessType": "Background",
        "StandardOutPath": paths.service_log,
        "StandardErrorPath": paths.service_log,
    }
    return plistlib.dumps(doc, sort_keys=False)


def systemd_quote(word: str, *, executable: bool = False) -> str:
    """One word of an ExecStart= line: double-quoted, with systemd's escapes (`\\`, `"`), `%`
    doubled (specifiers) and, in arguments, `$` doubled (variables; the executable's path is
    not expanded, `systemd-analyze verify` showed)."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if not executable:
        escaped = escaped.replace("$", "$$")
    return f'"{escaped}"'


def _path_value(path: str) -> str:
    """A path as a unit setting's value: specifiers escaped (`%` is systemd's)."""
    return path.replace("%", "%%")


def systemd_unit(host: HostSpec, paths: Layout, *, system: bool, user: str | None) -> str:
    """The agent's unit. `system`: a system unit running as `user` (provisioning as root,
    allowed by the inventory); else a user unit (with lingering, it starts at boot)."""
    lines = [
        "# Written by `contentctl provision`: the agent of " + host.name,
        "[Unit]",
        f"Description=contentctl agent {host.name}",
        "Wants=network-online.target",
        "After=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=simple",
        f"WorkingDirectory={_path_value(paths.base)}",
        f"EnvironmentFile={_path_value(paths.env_file)}",
        *(f"Environment={systemd_quote(f'{k}={v}')}" for k, v in SERVICE_ENV.items()),
        "ExecStart="
        + " ".join(systemd_quote(w, executable=i == 0) for i, w in enumerate(argv(host, paths))),
        "Restart=on-failure",
        f"RestartSec={RESTART_S}",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        f"TimeoutStopSec={STOP_TIMEOUT_S}",
        f"StandardOutput=append:{_path_value(paths.service_log)}",
        f"StandardError=append:{_path_value(paths.service_log)}",
    ]
    if system:
        lines.append(f"User={user or 'root'}")
    lines += ["", "[Install]", f"WantedBy={'multi-user.target' if system else 'default.target'}"]
    return "\n".join(lines) + "\n"


# -- commands ---------------------------------------------------------------------------------
def launchd_domain(facts: HostFacts) -> str:
    """`gui/<uid>` when the user has a GUI session (the launchd domain exists), else
    `user/<uid>`: the domain that exists on a headless Mac reached over SSH."""
    return f"{'gui' if facts.gui_session else 'user'}/{facts.uid}"


def launchd_install(host: HostSpec, facts: HostFacts, plist: str) -> list[str]:
    """Load the (new) plist and start it, idempotently: bootout what may be loaded, bootstrap
    the file, kickstart the job."""
    domain = launchd_domain(facts)
    target = shlex.quote(f"{domain}/{label(host)}")
    return [
        f"launchctl bootout {target} 2>/dev/null || true",
        f"launchctl bootstrap {shlex.quote(domain)} {shlex.quote(plist)}",
        f"launchctl kickstart -k {target}",
    ]


def launchd_control(host: HostSpec, facts: HostFacts, plist: str, action: str) -> list[str]:
    """`agent start|stop|restart` through launchd. Stop is a bootout (KeepAlive would not
    restart a clean exit anyway, and the job stays unloaded until started)."""
    domain = launchd_domain(facts)
    target = shlex.quote(f"{domain}/{label(host)}")
    if action == "stop":
        return [f"launchctl bootout {target} 2>/dev/null || true"]
    if action == "restart":
        return [f"launchctl kickstart -k {target}"]
    return [
        f"launchctl print {target} >/dev/null 2>&1 || "
        f"launchctl bootstrap {shlex.quote(domain)} {shlex.quote(plist)}",
        f"launchctl kickstart {target}",
    ]


def systemctl(system: bool) -> str:
    return "systemctl" if system else "systemctl --user"


def systemd_install(host: HostSpec, facts: HostFacts, system: bool) -> list[str]:
    unit = shlex.quote(unit_name(host))
    cmds = []
    if not system and not facts.linger:
        cmds.append(f"loginctl enable-linger {shlex.quote(facts.user or '')}")
    return [
        *cmds,
        f"{systemctl(system)} daemon-reload",
        f"{systemctl(system)} enable {unit}",
        f"{systemctl(system)} restart {unit}",
    ]


def systemd_control(host: HostSpec, system: bool, action: str) -> list[str]:
    return [f"{systemctl(system)} {action} {shlex.quote(unit_name(host))}"]
