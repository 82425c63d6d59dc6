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
import json
import shlex
import time
from collections.abc import Callable
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
import json, os, platform, shutil, sys
base = os.path.expanduser(sys.argv[1])
home = os.path.expanduser("~")
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
print(json.dumps({
    "os": platform.system(), "arch": platform.machine(),
    "apple_silicon": platform.system() == "Darwin" and platform.machine() == "arm64",
    "python": platform.python_version(), "base_dir": base,
    "disk_free_gb": round(st.f_bavail * st.f_frsize / 1e9, 1),
    "uv": which("uv", "~/.local/bin/uv", "~/.cargo/bin/uv"), "conda": conda, "conda_envs": envs,
    "systemd_user": bool(shutil.which("systemctl") and os.environ.get("XDG_RUNTIME_DIR")),
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
    res = await ssh.run(host, f"python3 - {shlex.quote(host.base_dir)}", input=FACTS)
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
        parts = urlsplit(self.database_url)
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
        env_text = plan.agent_env(host, layout, bare)
        inv_text = self.inventory_path.read_text() if self.inventory_path else "hosts: {}\n"
        statuses.append(await self._put_text(host, layout.env_file, env_text))
        statuses.append(await self._put_text(host, layout.inventory, inv_text))
        status = _combine(statuses)
        state["config_changed"] = status != "ok"
        return status, f"{bare} (password in the keychain)" if password else bare

    async def _service(self, host: HostSpec, state: dict[str, Any]) -> tuple[str, str]:
        layout: plan.Layout = state["layout"]
        kind, _ = plan.service_plan(state["facts"], host, layout)
        status = await self._put_text(host, layout.runner, plan.runner_script(host, layout))
        if status == "changed":
            await self.ssh.run(host, f"chmod 755 {shlex.quote(layout.runner)}")
        state["service_changed"] = status != "ok"
        state["service_kind"] = kind
        return status, f"{kind}: {layout.runner}"

    async def _start(self, host: HostSpec, state: dict[str, Any]) -> tuple[str, str]:
        layout: plan.Layout = state["layout"]
        facts = state["facts"]
        running = bool(facts.get("supervisor_pid"))
        stale = any(
            state.get(k)
            for k in ("code_changed", "env_changed", "config_changed", "service_changed")
        )
        if running and not stale:
            return "ok", f"agent running (supervisor pid {facts['supervisor_pid']})"
        if self.dry_run:
            return "would-change", "restart the agent" if running else "start the agent"
        since = time.time()
        if running:
            await self.ssh.run(host, plan.stop_command(layout), timeout_s=60)
        _, commands = plan.service_plan(facts, host, layout)
        for cmd in commands:
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
        return "changed", ("restarted" if running else "started") + ", heartbeating"

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
