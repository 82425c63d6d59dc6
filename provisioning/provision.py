"""`contentctl provision`: one host from nothing to a heartbeating agent, idempotently.

Steps, each reported ok / changed / failed (or would-change under --dry-run) with its time:
facts, code (incremental sync of the head's tree to base_dir/app), environment (uv sync
against our lock, or a named conda env), NAS credential (into the worker's keychain, over the
SSH channel's stdin), database (URL in the agent's env file, password in the keychain), agent
service (launchd, systemd user unit, or a supervisor script), start (and wait for the first
heartbeat carrying the head's code hash). A second run on a provisioned host changes nothing.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from control.core.errors import ContentctlError
from control.core.inventory import HostSpec
from control.core.redact import first_line
from provisioning import plan
from provisioning.ssh import SSH, SSHFailure

HEARTBEAT_WAIT_S = 120.0

FACTS = r"""
import json, os, platform, pwd, shutil, subprocess, sys
base = os.path.expanduser(sys.argv[1])
name = sys.argv[2] if len(sys.argv) > 2 else ""
home = os.path.expanduser("~")
user = pwd.getpwuid(os.getuid()).pw_name
def run(*cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p
def out(*cmd):
    p = run(*cmd)
    return p.stdout.strip() if p is not None and p.returncode == 0 else None
system = out("uname", "-s") or platform.system()
arch = out("uname", "-m") or platform.machine()
darwin = system == "Darwin"
def ok(*cmd):
    p = run(*cmd)
    return p is not None and p.returncode == 0
gui = darwin and ok("launchctl", "print", f"gui/{os.getuid()}")
sysd = (not darwin) and shutil.which("systemctl") is not None
sysd_user = sysd and ok("systemctl", "--user", "show-environment")
linger = bool(sysd and out("loginctl", "show-user", user, "-p", "Linger", "--value") == "yes")
keychain = None
if darwin:
    login = os.path.join(home, "Library/Keychains/login.keychain-db")
    keychain = "unlocked" if ok("security", "show-keychain-info", login) else "locked"
def which(name, *extra):
    found = shutil.which(name)
    if found:
        return found
    for p in extra:
        p = os.path.expanduser(p)
        if os.access(p, os.X_OK):
            return p
    return None
conda = which("conda", "~/miniforge3/bin/conda")
envs = []
if conda:
    d = os.path.join(os.path.dirname(os.path.dirname(conda)), "envs")
    envs = sorted(os.listdir(d)) if os.path.isdir(d) else []
probe = base if os.path.isdir(base) else home
st = os.statvfs(probe)
pid = None
try:
    pid = int(open(os.path.join(base, "supervisor.pid")).read().strip())
    os.kill(pid, 0)
except Exception:
    pid = None
label = "com.contentctl.agent." + name
unit = "contentctl-agent-" + name + ".service"
plist = os.path.join(home, "Library/LaunchAgents", label + ".plist")
user_unit = os.path.join(home, ".config/systemd/user", unit)
system_unit = os.path.join("/etc/systemd/system", unit)
service, running = None, False
if darwin and os.path.isfile(plist):
    service = "launchd"
    domain = ("gui/" if gui else "user/") + str(os.getuid())
    running = ok("launchctl", "print", domain + "/" + label)
elif sysd and os.path.isfile(system_unit):
    service = "systemd-system"
    running = out("systemctl", "is-active", unit) == "active"
elif sysd and os.path.isfile(user_unit):
    service = "systemd-user"
    running = out("systemctl", "--user", "is-active", unit) == "active"
print(json.dumps({
    "service": service, "service_running": running,
    "os": system, "arch": arch, "apple_silicon": darwin and arch == "arm64",
    "uid": os.getuid(), "user": user, "home": home, "gui_session": gui,
    "systemd": sysd, "systemd_user": sysd_user, "linger": linger, "keychain": keychain,
    "python": platform.python_version(), "base_dir": base,
    "disk_free_gb": round(st.f_bavail * st.f_frsize / 1e9, 1),
    "uv": which("uv", "~/.local/bin/uv", "~/.cargo/bin/uv"), "conda": conda, "conda_envs": envs,
    "code_present": os.path.isfile(os.path.join(base, "app", "pyproject.toml")),
    "supervisor_pid": pid,
}))
"""

MANIFEST = r"""
import hashlib, json, os, sys
app = sys.argv[1]
out = {}
for root, dirs, files in os.walk(app):
    dirs[:] = [d for d in dirs if d not in (".venv", "__pycache__")]
    for f in files:
        if f.endswith(".contentctl-part") or f.endswith(".pyc"):
            continue
        p = os.path.join(root, f)
        with open(p, "rb") as fh:
            out[os.path.relpath(p, app)] = hashlib.sha256(fh.read()).hexdigest()
try:
    owned = json.load(open(os.path.join(app, ".contentctl-manifest.json")))
except Exception:
    owned = []
print(json.dumps({"files": out, "owned": owned}))
"""

# Run with the environment's python; the secret arrives on stdin, never in argv.
SECRET = (
    "import os, sys, keyring; name, mode = sys.argv[1], sys.argv[2]; "
    "kr = type(keyring.get_keyring()); "
    "(kr.__module__.startswith('keyrings.alt') and not os.environ.get('PYTHON_KEYRING_BACKEND')) "
    "and sys.exit('only a plaintext file keyring here: set keyring_backend for this host'); "
    "value = sys.stdin.readline().rstrip('\\n'); old = keyring.get_password('contentctl', name); "
    "print('ok' if old == value else ('would-change' if mode == 'check' else "
    "(keyring.set_password('contentctl', name, value) or 'changed')))"
)


def parse_facts(host: str, stdout: str) -> dict[str, Any]:
    """The facts script's JSON: its last line, whatever a login banner or a shell start-up file
    printed before it."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                facts = json.loads(line)
            except ValueError:
                break
            if isinstance(facts, dict) and "base_dir" in facts:
                return facts
            break
    last = (stdout.strip().splitlines() or ["nothing"])[-1][:200]
    raise StepFailed(f"{host}: unreadable facts (last line: {last!r}): check the shell's output")


async def read_facts(ssh: SSH, host: HostSpec) -> dict[str, Any]:
    cmd = f"python3 - {shlex.quote(host.base_dir)} {shlex.quote(host.name)}"
    res = await ssh.run(host, cmd, input=FACTS)
    if not res.ok:
        raise StepFailed(f"{host.name}: python3 is needed on the host: {res.last_line()}")
    return parse_facts(host.name, res.stdout)


@dataclass
class Step:
    name: str
    status: str  # ok | changed | would-change | failed | skipped
    detail: str = ""
    seconds: float = 0.0


@dataclass
class HostReport:
    host: str
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(s.status == "failed" for s in self.steps)

    @property
    def changed(self) -> bool:
        return any(s.status in ("changed", "would-change") for s in self.steps)


class StepFailed(ContentctlError):
    pass


@dataclass
class Provisioner:
    ssh: SSH
    repo: Path
    inventory_path: Path | None
    database_url: str  # with its password: split here, never sent in argv
    nas_password: str | None = None
    dry_run: bool = False
    heartbeat: Callable[[str, str, float], Any] | None = None  # (host, code_hash, since) -> bool
    head_code_hash: str = ""
    on_step: Callable[[str, Step], None] | None = None
    # one host's own database URL (its own role); None: every host uses `database_url`
    host_url: Callable[[HostSpec], Awaitable[str]] | None = None

    async def provision(self, host: HostSpec) -> HostReport:
        report = HostReport(host.name)
        state: dict[str, Any] = {"changed": False}
        steps = [
            ("facts", self._facts),
            ("code", self._code),
            ("environment", self._environment),
            ("nas credential", self._nas),
            ("database", self._database),
            ("agent service", self._service),
            ("start", self._start),
        ]
        for name, fn in steps:
            t0 = time.monotonic()
            try:
                status, detail = await fn(host, state)
            except (StepFailed, SSHFailure) as exc:
                status, detail = "failed", str(exc)
            except Exception as exc:  # this host's step failed; the caller's other hosts go on
                status, detail = "failed", f"{host.name}: {type(exc).__name__}: {first_line(exc)}"
            step = Step(name, status, detail, round(time.monotonic() - t0, 2))
            report.steps.append(step)
            if self.on_step:
                self.on_step(host.name, step)
            if status == "failed":
                break
            if status in ("changed", "would-change"):
                state["changed"] = True
        return report

    # -- steps ---------------------------------------------------------------------------
    async def _facts(self, host: HostSpec, state: dict[str, Any]) -> tuple[str, str]:
        facts = await read_facts(self.ssh, host)
        state["facts"] = facts
        state["layout"] = plan.Layout(facts["base_dir"])
        tool = "uv" if host.env.get("manager", "uv") == "uv" else "conda"
        detail = (
            f"{facts['os']} {facts['arch']}{' (Apple silicon)' if facts['apple_silicon'] else ''}"
            f", Python {facts['python']}, {facts['disk_free_gb']} GB free, "
            f"{tool} {'found' if facts.get(tool) else 'missing'}"
        )
        return "ok", detail

    async def _code(self, host: HostSpec, state: dict[str, Any]) -> tuple[str, str]:
        layout: plan.Layout = state["layout"]
        res = await self.ssh.run(host, f"python3 - {shlex.quote(layout.app)}", input=MANIFEST)
        if not res.ok:
            raise StepFailed(f"{host.name}: cannot read {layout.app}: {res.last_line()}")
        remote = json.loads(res.stdout)
        local = plan.local_files(self.repo)
        hashes = {rel: plan.sha256(p) for rel, p in local.items()}
        send = [rel for rel, h in hashes.items() if remote["files"].get(rel) != h]
        owned = set(remote["owned"])  # only what an earlier sync put there is ever deleted
        gone = sorted(rel for rel in owned if rel not in hashes and rel in remote["files"])
        state["code_changed"] = bool(send or gone)
        if not send and not gone:
            return "ok", f"{len(hashes)} files up to date"
        what = f"{len(send)} file(s) to send, {len(gone)} to delete"
        if self.dry_run:
            return "would-change", what + (f": {', '.join(send[:5])}" if send else "")
        sent = await self.ssh.put(host, [(local[rel], f"{layout.app}/{rel}") for rel in send])
        manifest = json.dumps(sorted(hashes))
        cmds = [f"rm -f {shlex.quote(f'{layout.app}/{rel}')}" for rel in gone]
        cmds.append(f"cat > {shlex.quote(layout.app + '/' + plan.MANIFEST)}")
        res = await self.ssh.run(host, " && ".join(cmds), input=manifest)
        if not res.ok:
            raise StepFailed(f"{host.name}: finishing the sync failed: {res.last_line()}")
        return "changed", f"sent {len(send)} file(s) ({sent:,} bytes), deleted {len(gone)}"

    async def _environment(self, host: HostSpec, state: dict[str, Any]) -> tuple[str, str]:
        layout: plan.Layout = state["layout"]
        env = plan.env_plan(state["facts"], host, layout)
        state["python"] = env.python
        stamp = plan.lock_stamp(self.repo)
        stamp_path = shlex.quote(f"{layout.app}/{plan.ENV_STAMP}")
        res = await self.ssh.run(host, f"cat {stamp_path} 2>/dev/null || true")
        if res.stdout.strip() == stamp:
            return "ok", f"{env.manager} environment matches uv.lock ({stamp})"
        if self.dry_run:
            return "would-change", " ; ".join(env.commands)
        for cmd in env.commands:
            res = await self.ssh.run(host, cmd, timeout_s=1800)
            if not res.ok:
                raise StepFailed(f"{host.name}: `{cmd}` failed: {res.last_line()}")
        await self.ssh.run(host, f"echo {stamp} > {stamp_path}")
        state["env_changed"] = True
        return "changed", f"{env.manager}: " + " ; ".join(env.commands)

    async def _secret(self, host: HostSpec, state: dict[str, Any], name: str, value: str) -> str:
        layout: plan.Layout = state["layout"]
        facts = state["facts"]
        if facts.get("keychain") == "locked" and not host.keyring_backend:
            # macOS: nobody logged in (a reboot, SSH only): the login keychain stays locked,
            # and a boot-time agent could not read it either. Never a silent plaintext file.
            raise StepFailed(
                f"{host.name}: the login keychain of {facts.get('user')} is locked (nobody is "
                "logged in on the Mac): log in on its screen once and enable automatic login, "
                "or name a keyring_backend for this host in the inventory"
            )
        python = state.get("python") or shlex.quote(f"{layout.app}/.venv/bin/python")
        mode = "check" if self.dry_run else "set"
        prefix = plan.keyring_env(host, layout)
        cmd = f"{prefix}{python} -c {shlex.quote(SECRET)} {shlex.quote(name)} {mode}"
        res = await self.ssh.run(host, cmd, input=value + "\n")
        if not res.ok:
            if self.dry_run:
                return "would-change"
            raise StepFailed(
                f"{host.name}: cannot store {name} in the keychain: {res.last_line()} "
                "(set keyring_backend for this host in the inventory)"
            )
        return res.stdout.strip().splitlines()[-1]

    async def _nas(self, host: HostSpec, state: dict[str, Any]) -> tuple[str, str]:
        if not self.nas_password:
            return "skipped", "no NAS in the inventory (storage is local)"
        status = await self._secret(host, state, "nas_password", self.nas_password)
        return status, "NAS password in the worker's keychain"

    async def _database(self, host: HostSpec, state: dict[str, Any]) -> tuple[str, str]:
        layout: plan.Layout = state["layout"]
        url = await self.host_url(host) if self.host_url else self.database_url
        parts = urlsplit(url)
        password = parts.password
        netloc = parts.hostname or ""
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        if parts.port:
            netloc += f":{parts.port}"
        bare = urlunsplit(parts._replace(netloc=netloc))
        statuses = []
        if password:
            statuses.append(await self._secret(host, state, "database_password", password))
        state["env_vars"] = plan.agent_env_vars(host, layout, bare)
        env_text = plan.agent_env(host, layout, bare)
        inv_text = self.inventory_path.read_text() if self.inventory_path else "hosts: {}\n"
        statuses.append(await self._put_text(host, layout.env_file, env_text))
        statuses.append(await self._put_text(host, layout.inventory, inv_text))
        status = _combine(statuses)
        state["config_changed"] = status != "ok"
        return status, f"{bare} (password in the keychain)" if password else bare

    async def _service(self, host: HostSpec, state: dict[str, Any]) -> tuple[str, str]:
        """Write the service's file (plist, unit or supervisor script); the start step loads
        it. Under --dry-run the detail carries the file, or its diff against the host's."""
        layout: plan.Layout = state["layout"]
        facts = state["facts"]
        kind = plan.service_kind(facts, host)
        env = state.get("env_vars") or {}
        file = plan.service_file(kind, facts, host, layout, env)
        status = await self._put_text(host, file.path, file.text)
        if status == "changed" and kind == "supervisor":
            await self.ssh.run(host, f"chmod 755 {shlex.quote(file.path)}")
        state["service_changed"] = status != "ok"
        state["service_kind"] = kind
        detail = f"{kind}: {file.path}"
        if status == "would-change":
            detail += "\n" + await self._diff(host, file.path, file.text)
        return status, detail

    def _running(self, kind: str, facts: dict[str, Any]) -> bool:
        if kind == "supervisor":
            return bool(facts.get("supervisor_pid"))
        return facts.get("service") == kind and bool(facts.get("service_running"))

    async def _start(self, host: HostSpec, state: dict[str, Any]) -> tuple[str, str]:
        layout: plan.Layout = state["layout"]
        facts = state["facts"]
        kind = state["service_kind"]
        running = self._running(kind, facts)
        stale = any(
            state.get(k)
            for k in ("code_changed", "env_changed", "config_changed", "service_changed")
        )
        if running and not stale:
            return "ok", f"agent running ({kind})"
        if self.dry_run:
            return "would-change", ("restart" if running else "start") + f" the agent ({kind})"
        since = time.time()
        if facts.get("supervisor_pid"):  # the supervisor's agent, or one moving to a service
            await self.ssh.run(host, plan.stop_command(layout), timeout_s=60)
        for cmd in plan.start_commands(kind, facts, host, layout):
            res = await self.ssh.run(host, cmd)
            if not res.ok:
                raise StepFailed(f"{host.name}: starting the agent failed: {res.last_line()}")
        if self.heartbeat is not None:
            deadline = time.monotonic() + HEARTBEAT_WAIT_S
            while not await self.heartbeat(host.name, self.head_code_hash, since):
                if time.monotonic() > deadline:
                    raise StepFailed(
                        f"{host.name}: no heartbeat within {HEARTBEAT_WAIT_S:g} s: see "
                        f"{layout.home}/agent.out on the host"
                    )
                await asyncio.sleep(0.5)
        return "changed", ("restarted" if running else "started") + f" ({kind}), heartbeating"

    async def _diff(self, host: HostSpec, path: str, text: str) -> str:
        """What writing `text` to `path` would change: the new file, or a unified diff."""
        res = await self.ssh.run(host, f"cat {shlex.quote(path)} 2>/dev/null || true")
        if not res.stdout:
            return "new file:\n" + text
        lines = difflib.unified_diff(
            res.stdout.splitlines(), text.splitlines(), path, path + " (new)", lineterm=""
        )
        return "\n".join(lines)

    async def _put_text(self, host: HostSpec, path: str, text: str) -> str:
        q = shlex.quote(path)
        res = await self.ssh.run(host, f"cat {q} 2>/dev/null || true")
        if res.stdout == text:
            return "ok"
        if self.dry_run:
            return "would-change"
        res = await self.ssh.run(
            host, f'mkdir -p "$(dirname {q})" && cat > {q}.part && mv {q}.part {q}', input=text
        )
        if not res.ok:
            raise StepFailed(f"{host.name}: cannot write {path}: {res.last_line()}")
        return "changed"


def _combine(statuses: list[str]) -> str:
    for s in ("failed", "changed", "would-change"):
        if s in statuses:
            return s
    return "ok"
