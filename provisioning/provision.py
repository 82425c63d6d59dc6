"""`contentctl provision`: one host from nothing to a heartbeating agent, idempotently.

Steps, each reported ok / changed / failed (or would-change under --dry-run) with its time:
facts, code (incremental sync of the head's tree to base_dir/app), environment (uv sync
against our lock, or a named conda env), NAS credential (into the worker's keychain, over the
SSH channel's stdin), database (URL in the agent's env file, password in the keychain), agent
service (launchd, systemd user unit, or a supervisor script), start (and wait for the first
heartbeat carrying the head's code hash). A second run on a provisioned host changes nothing.

In pyinfra's manner: a step reads facts (provisioning/facts.py) and returns the `Change` it
would make, or none; the runner alone decides whether a change is made (`--dry-run`: it is
reported as would-change and nothing is applied). What that costs: a secret that must change
is checked, then set (two round trips where one did both before).
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

from control.core.inventory import HostSpec
from control.core.redact import first_line
from provisioning import plan
from provisioning.facts import FileText, HostFacts, StepFailed, Tree, gather, read_facts
from provisioning.ssh import SSH, SSHFailure

__all__ = ["HostReport", "Provisioner", "Step", "StepFailed", "read_facts"]

HEARTBEAT_WAIT_S = 120.0

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


Apply = Callable[[], Awaitable[str]]  # makes the change; what it did, in a line


@dataclass(frozen=True)
class Change:
    """What a step found: nothing to do (`apply` None: `status` ok or skipped, `detail` what
    is), or a change it would make (`detail` what would change, `apply` makes it)."""

    detail: str
    apply: Apply | None = None
    status: str = "ok"

    @staticmethod
    def all(changes: list[Change], detail: str) -> Change:
        """One change of several (the database step: a secret and two files)."""
        due = [c.apply for c in changes if c.apply is not None]
        if not due:
            return Change(detail)

        async def apply() -> str:
            for fn in due:
                await fn()
            return detail

        return Change(detail, apply)


@dataclass
class HostState:
    """What a host's steps learn on the way: the facts, where things go, and which steps
    found something to change (a changed code, environment, configuration or service file
    restarts the agent)."""

    facts: HostFacts | None = None
    layout: plan.Layout | None = None
    python: str | None = None  # the environment's interpreter, once planned
    env_vars: dict[str, str] = field(default_factory=dict)
    service_kind: str = "supervisor"
    changed: set[str] = field(default_factory=set)

    def known(self) -> tuple[HostFacts, plan.Layout]:
        assert self.facts is not None and self.layout is not None, "the facts step runs first"
        return self.facts, self.layout


RESTARTING = ("code", "environment", "database", "agent service")


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
        state = HostState()
        steps: list[tuple[str, Callable[[HostSpec, HostState], Awaitable[Change]]]] = [
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
                status, detail = await self._run(name, fn, host, state)
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
        return report

    async def _run(
        self,
        name: str,
        step: Callable[[HostSpec, HostState], Awaitable[Change]],
        host: HostSpec,
        state: HostState,
    ) -> tuple[str, str]:
        """One step: what it found, and the change made unless this is a dry run (decided
        here, once, for every step)."""
        change = await step(host, state)
        if change.apply is None:
            return change.status, change.detail
        state.changed.add(name)
        if self.dry_run:
            return "would-change", change.detail
        return "changed", await change.apply()

    # -- steps ---------------------------------------------------------------------------
    async def _facts(self, host: HostSpec, state: HostState) -> Change:
        facts = await read_facts(self.ssh, host)
        state.facts, state.layout = facts, plan.Layout(facts.base_dir)
        tool = "uv" if host.env.get("manager", "uv") == "uv" else "conda"
        return Change(
            f"{facts.os} {facts.arch}{' (Apple silicon)' if facts.apple_silicon else ''}"
            f", Python {facts.python}, {facts.disk_free_gb} GB free, "
            f"{tool} {'found' if facts.tool(tool) else 'missing'}"
        )

    async def _code(self, host: HostSpec, state: HostState) -> Change:
        _, layout = state.known()
        remote = await gather(self.ssh, host, Tree(layout.app))
        local = plan.local_files(self.repo)
        hashes = {rel: plan.sha256(p) for rel, p in local.items()}
        send = [rel for rel, h in hashes.items() if remote.files.get(rel) != h]
        # only what an earlier sync put there is ever deleted
        gone = sorted(rel for rel in remote.owned if rel not in hashes and rel in remote.files)
        if not send and not gone:
            return Change(f"{len(hashes)} files up to date")
        what = f"{len(send)} file(s) to send, {len(gone)} to delete"

        async def apply() -> str:
            sent = await self.ssh.put(host, [(local[rel], f"{layout.app}/{rel}") for rel in send])
            manifest = json.dumps(sorted(hashes))
            cmds = [f"rm -f {shlex.quote(f'{layout.app}/{rel}')}" for rel in gone]
            cmds.append(f"cat > {shlex.quote(layout.app + '/' + plan.MANIFEST)}")
            res = await self.ssh.run(host, " && ".join(cmds), input=manifest)
            if not res.ok:
                raise StepFailed(f"{host.name}: finishing the sync failed: {res.last_line()}")
            return f"sent {len(send)} file(s) ({sent:,} bytes), deleted {len(gone)}"

        return Change(what + (f": {', '.join(send[:5])}" if send else ""), apply)

    async def _environment(self, host: HostSpec, state: HostState) -> Change:
        facts, layout = state.known()
        env = plan.env_plan(facts, host, layout)
        state.python = env.python
        stamp = plan.lock_stamp(self.repo)
        stamp_path = f"{layout.app}/{plan.ENV_STAMP}"
        if (await gather(self.ssh, host, FileText(stamp_path))).strip() == stamp:
            return Change(f"{env.manager} environment matches uv.lock ({stamp})")

        async def apply() -> str:
            for cmd in env.commands:
                res = await self.ssh.run(host, cmd, timeout_s=1800)
                if not res.ok:
                    raise StepFailed(f"{host.name}: `{cmd}` failed: {res.last_line()}")
            await self.ssh.run(host, f"echo {stamp} > {shlex.quote(stamp_path)}")
            return f"{env.manager}: " + " ; ".join(env.commands)

        return Change(" ; ".join(env.commands), apply)

    async def _secret(self, host: HostSpec, state: HostState, name: str, value: str) -> Change:
        facts, layout = state.known()
        if facts.keychain == "locked" and not host.keyring_backend:
            # macOS: nobody logged in (a reboot, SSH only): the login keychain stays locked,
            # and a boot-time agent could not read it either. Never a silent plaintext file.
            raise StepFailed(
                f"{host.name}: the login keychain of {facts.user} is locked (nobody is "
                "logged in on the Mac): log in on its screen once and enable automatic login, "
                "or name a keyring_backend for this host in the inventory"
            )
        python = state.python or shlex.quote(f"{layout.app}/.venv/bin/python")
        prefix = plan.keyring_env(host, layout)

        def command(mode: str) -> str:
            return f"{prefix}{python} -c {shlex.quote(SECRET)} {shlex.quote(name)} {mode}"

        async def apply() -> str:
            res = await self.ssh.run(host, command("set"), input=value + "\n")
            if not res.ok:
                raise StepFailed(
                    f"{host.name}: cannot store {name} in the keychain: {res.last_line()} "
                    "(set keyring_backend for this host in the inventory)"
                )
            return res.stdout.strip().splitlines()[-1]

        # the check: the environment may not exist yet (a dry run before the first real one)
        res = await self.ssh.run(host, command("check"), input=value + "\n")
        if res.ok and res.stdout.strip().splitlines()[-1:] == ["ok"]:
            return Change(name)
        return Change(name, apply)

    async def _nas(self, host: HostSpec, state: HostState) -> Change:
        if not self.nas_password:
            return Change("no NAS in the inventory (storage is local)", status="skipped")
        said = "NAS password in the worker's keychain"
        return Change.all(
            [await self._secret(host, state, "nas_password", self.nas_password)], said
        )

    async def _database(self, host: HostSpec, state: HostState) -> Change:
        _, layout = state.known()
        url = await self.host_url(host) if self.host_url else self.database_url
        parts = urlsplit(url)
        password = parts.password
        netloc = parts.hostname or ""
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        if parts.port:
            netloc += f":{parts.port}"
        bare = urlunsplit(parts._replace(netloc=netloc))
        changes = []
        if password:
            changes.append(await self._secret(host, state, "database_password", password))
        state.env_vars = plan.agent_env_vars(host, layout, bare)
        env_text = plan.agent_env(host, layout, bare)
        inv_text = self.inventory_path.read_text() if self.inventory_path else "hosts: {}\n"
        changes.append(await self._file(host, layout.env_file, env_text))
        changes.append(await self._file(host, layout.inventory, inv_text))
        return Change.all(changes, f"{bare} (password in the keychain)" if password else bare)

    async def _service(self, host: HostSpec, state: HostState) -> Change:
        """Write the service's file (plist, unit or supervisor script); the start step loads
        it. What would change carries the file, or its diff against the host's."""
        facts, layout = state.known()
        kind = state.service_kind = plan.service_kind(facts, host)
        file = plan.service_file(kind, facts, host, layout, state.env_vars)
        detail = f"{kind}: {file.path}"
        found = await gather(self.ssh, host, FileText(file.path))
        write = self._file_change(host, file.path, file.text, found)
        if write.apply is None:
            return Change(detail)
        written = write.apply

        async def apply() -> str:
            await written()
            if kind == "supervisor":
                await self.ssh.run(host, f"chmod 755 {shlex.quote(file.path)}")
            return detail

        return Change(detail + "\n" + _diff(file.path, found, file.text), apply)

    @staticmethod
    def _running(kind: str, facts: HostFacts) -> bool:
        if kind == "supervisor":
            return bool(facts.supervisor_pid)
        return facts.service == kind and facts.service_running

    async def _start(self, host: HostSpec, state: HostState) -> Change:
        facts, layout = state.known()
        kind = state.service_kind
        running = self._running(kind, facts)
        if running and not state.changed & set(RESTARTING):
            return Change(f"agent running ({kind})")

        async def apply() -> str:
            since = time.time()
            if facts.supervisor_pid:  # the supervisor's agent, or one moving to a service
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
            return ("restarted" if running else "started") + f" ({kind}), heartbeating"

        return Change(("restart" if running else "start") + f" the agent ({kind})", apply)

    async def _file(self, host: HostSpec, path: str, text: str) -> Change:
        return self._file_change(host, path, text, await gather(self.ssh, host, FileText(path)))

    def _file_change(self, host: HostSpec, path: str, text: str, found: str) -> Change:
        """`text` at `path` on the host, which holds `found` there now."""
        if found == text:
            return Change(path)

        async def apply() -> str:
            q = shlex.quote(path)
            res = await self.ssh.run(
                host, f'mkdir -p "$(dirname {q})" && cat > {q}.part && mv {q}.part {q}', input=text
            )
            if not res.ok:
                raise StepFailed(f"{host.name}: cannot write {path}: {res.last_line()}")
            return path

        return Change(path, apply)


def _diff(path: str, found: str, text: str) -> str:
    """What writing `text` over `found` at `path` would change: the new file, or a diff."""
    if not found:
        return "new file:\n" + text
    lines = difflib.unified_diff(
        found.splitlines(), text.splitlines(), path, path + " (new)", lineterm=""
    )
    return "\n".join(lines)
