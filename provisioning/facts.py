"""What provisioning learns of a host, in pyinfra's manner: each fact is a command and a
parser (`Fact`), read by `gather` over SSH into a typed value: the host (`HostFacts`), the
app's files (`Tree`), a file's text (`FileText`). Steps (provisioning/provision.py) decide
from facts; nothing here changes a host."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeVar

from control.core.errors import ContentctlError
from control.core.inventory import HostSpec
from provisioning.ssh import SSH

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class StepFailed(ContentctlError):
    pass


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


@dataclass(frozen=True)
class HostFacts:
    """The host as the facts script found it: its system, its service manager and whether the
    agent's service runs, its keychain, its tools, where the agent lives."""

    base_dir: str
    os: str = ""
    arch: str = ""
    apple_silicon: bool = False
    uid: int | None = None
    user: str | None = None
    home: str | None = None
    gui_session: bool = False
    systemd: bool = False
    systemd_user: bool = False
    linger: bool = False
    keychain: str | None = None  # macOS: unlocked | locked
    python: str = ""
    disk_free_gb: float = 0.0
    uv: str | None = None
    conda: str | None = None
    conda_envs: tuple[str, ...] = ()
    code_present: bool = False
    service: str | None = None  # launchd | systemd-system | systemd-user, installed
    service_running: bool = False
    supervisor_pid: int | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> HostFacts:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        values["conda_envs"] = tuple(doc.get("conda_envs") or ())
        return cls(**values)

    def tool(self, name: str) -> str | None:
        """The path of `uv` or `conda` on the host, or None."""
        return self.uv if name == "uv" else self.conda if name == "conda" else None


class Fact(Protocol[T_co]):
    def command(self, host: HostSpec) -> tuple[str, str | None]:
        """The shell command, and what it reads on stdin."""
        ...

    def parse(self, host: HostSpec, stdout: str) -> T_co: ...

    def failed(self, host: HostSpec, why: str) -> str:
        """The one line when the command fails."""
        ...


@dataclass(frozen=True)
class Facts:
    """The host (`HostFacts`): the facts script, run by the host's python3."""

    def command(self, host: HostSpec) -> tuple[str, str | None]:
        return f"python3 - {shlex.quote(host.base_dir)} {shlex.quote(host.name)}", FACTS

    def parse(self, host: HostSpec, stdout: str) -> HostFacts:
        return HostFacts.from_json(parse_facts(host.name, stdout))

    def failed(self, host: HostSpec, why: str) -> str:
        return f"{host.name}: python3 is needed on the host: {why}"


@dataclass(frozen=True)
class RemoteTree:
    files: dict[str, str]  # path under the app -> sha256
    owned: frozenset[str]  # what an earlier sync put there (only that is ever deleted)


@dataclass(frozen=True)
class Tree:
    """The files under the host's app directory, hashed, and the manifest of the last sync."""

    app: str

    def command(self, host: HostSpec) -> tuple[str, str | None]:
        return f"python3 - {shlex.quote(self.app)}", MANIFEST

    def parse(self, host: HostSpec, stdout: str) -> RemoteTree:
        doc = json.loads(stdout)
        return RemoteTree(dict(doc["files"]), frozenset(doc["owned"]))

    def failed(self, host: HostSpec, why: str) -> str:
        return f"{host.name}: cannot read {self.app}: {why}"


@dataclass(frozen=True)
class FileText:
    """A file's text on the host ("" when there is none)."""

    path: str

    def command(self, host: HostSpec) -> tuple[str, str | None]:
        return f"cat {shlex.quote(self.path)} 2>/dev/null || true", None

    def parse(self, host: HostSpec, stdout: str) -> str:
        return stdout

    def failed(self, host: HostSpec, why: str) -> str:
        return f"{host.name}: cannot read {self.path}: {why}"


async def gather(ssh: SSH, host: HostSpec, fact: Fact[T]) -> T:
    """Run a fact's command on the host and parse what it printed."""
    cmd, stdin = fact.command(host)
    res = await ssh.run(host, cmd, input=stdin)
    if not res.ok:
        raise StepFailed(fact.failed(host, res.last_line()))
    return fact.parse(host, res.stdout)


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


async def read_facts(ssh: SSH, host: HostSpec) -> HostFacts:
    return await gather(ssh, host, Facts())
