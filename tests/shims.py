"""Small stand-ins for what this machine cannot run (no macOS, no systemd as PID 1): `uname`,
`launchctl`, `security`, `systemctl` and `loginctl` that record their arguments and keep state
the way launchd and systemd do, and really start the agent a service file describes, so
provisioning can be tested end to end against a loopback sshd whose PATH puts them first.

What they model, and only that:
- launchctl: domains `gui/<uid>` (absent unless `gui` is set: a headless Mac) and `user/<uid>`;
  `print DOMAIN` / `print DOMAIN/LABEL` (113 when missing), `bootstrap DOMAIN PLIST` (125 for
  an absent domain, 5 when already loaded; RunAtLoad starts the program), `bootout
  DOMAIN/LABEL` (SIGTERM, then forgotten), `kickstart [-k] DOMAIN/LABEL`. The plist is read
  with plistlib: ProgramArguments, WorkingDirectory, EnvironmentVariables, StandardOutPath.
- security: `show-keychain-info` answers 36 (locked) when the state says so.
- systemctl (--user or system): show-environment, daemon-reload, enable, restart, start,
  stop, is-active; the unit's ExecStart, WorkingDirectory, EnvironmentFile and Environment.
- loginctl: enable-linger USER, show-user USER -p Linger --value.
Every call is appended to STATE/calls.log.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

COMMON = r"""#!{python}
import json, os, plistlib, shlex, signal, subprocess, sys, time
STATE = {state!r}
os.makedirs(os.path.join(STATE, "jobs"), exist_ok=True)
with open(os.path.join(STATE, "calls.log"), "a") as fh:
    fh.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\n")
def job_file(name):
    return os.path.join(STATE, "jobs", name.replace("/", "_") + ".json")
def load(name):
    try:
        return json.load(open(job_file(name)))
    except OSError:
        return None
def save(name, job):
    json.dump(job, open(job_file(name), "w"))
def alive(job):
    pid = job and job.get("pid")
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return open(f"/proc/{{pid}}/stat").read().split()[2] != "Z"
    except OSError:
        return True
def start(name, job):
    if job.get("out"):
        os.makedirs(os.path.dirname(job["out"]), exist_ok=True)
    out = open(job["out"], "ab") if job.get("out") else subprocess.DEVNULL
    env = dict(os.environ)
    env.update(job.get("env") or {{}})
    p = subprocess.Popen(job["argv"], cwd=job.get("cwd") or "/", env=env, stdout=out,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    job["pid"] = p.pid
    save(name, job)
def stop(name, job):
    if alive(job):
        os.killpg(job["pid"], signal.SIGTERM)
        for _ in range(120):
            if not alive(job):
                break
            time.sleep(0.25)
    job["pid"] = None
    save(name, job)
"""

UNAME = r"""
args = sys.argv[1:]
if args == ["-s"]:
    print("Darwin")
elif args == ["-m"]:
    print("arm64")
else:
    os.execv("/bin/uname", ["uname", *args])
"""

LAUNCHCTL = r"""
GUI = os.path.exists(os.path.join(STATE, "gui"))
args = sys.argv[1:]
def domain_ok(domain):
    return domain.startswith("user/") or (GUI and domain.startswith("gui/"))
cmd = args[0] if args else ""
if cmd == "print":
    target = args[1]
    if target.count("/") == 1:
        sys.exit(0 if domain_ok(target) else 113)
    job = load(target)
    sys.exit(0 if job and job.get("loaded") else 113)
if cmd == "bootstrap":
    domain, plist_path = args[1], args[2]
    if not domain_ok(domain):
        print(f"Bootstrap failed: 125: Domain does not support specified action", file=sys.stderr)
        sys.exit(125)
    doc = plistlib.load(open(plist_path, "rb"))
    name = domain + "/" + doc["Label"]
    job = load(name)
    if job and job.get("loaded"):
        print("Bootstrap failed: 5: Input/output error", file=sys.stderr)
        sys.exit(5)
    job = {{"loaded": True, "argv": doc["ProgramArguments"], "cwd": doc.get("WorkingDirectory"),
           "env": doc.get("EnvironmentVariables") or {{}}, "out": doc.get("StandardOutPath"),
           "pid": None}}
    save(name, job)
    if doc.get("RunAtLoad"):
        start(name, job)
    sys.exit(0)
if cmd == "bootout":
    job = load(args[1])
    if not job or not job.get("loaded"):
        print("Boot-out failed: 3: No such process", file=sys.stderr)
        sys.exit(3)
    stop(args[1], job)
    job["loaded"] = False
    save(args[1], job)
    sys.exit(0)
if cmd == "kickstart":
    kill = "-k" in args
    name = args[-1]
    job = load(name)
    if not job or not job.get("loaded"):
        print("Could not find service in domain", file=sys.stderr)
        sys.exit(113)
    if alive(job):
        if not kill:
            sys.exit(0)
        stop(name, job)
    start(name, job)
    sys.exit(0)
print(f"launchctl shim: unsupported {{args}}", file=sys.stderr)
sys.exit(64)
"""

SECURITY = r"""
if sys.argv[1:2] == ["show-keychain-info"]:
    if os.path.exists(os.path.join(STATE, "keychain_locked")):
        print("security: User interaction is not allowed.", file=sys.stderr)
        sys.exit(36)
    sys.exit(0)
sys.exit(64)
"""

SYSTEMCTL = r"""
args = sys.argv[1:]
user = "--user" in args
args = [a for a in args if a != "--user"]
cmd = args[0] if args else ""
def unit_path(unit):
    if user:
        return os.path.join(os.path.expanduser("~"), ".config/systemd/user", unit)
    return os.path.join("/etc/systemd/system", unit)
def parse(unit):
    job = {{"argv": None, "cwd": None, "env": {{}}, "out": None, "pid": None}}
    for line in open(unit_path(unit)):
        key, sep, value = line.strip().partition("=")
        if not sep:
            continue
        if key == "ExecStart":
            job["argv"] = [w.replace("$$", "$").replace("%%", "%") for w in shlex.split(value)]
        elif key == "WorkingDirectory":
            job["cwd"] = value.replace("%%", "%")
        elif key == "EnvironmentFile":
            for env_line in open(value.replace("%%", "%")):
                k, s, v = env_line.strip().partition("=")
                if s and not k.startswith("#"):
                    job["env"][k] = shlex.split(v)[0] if v else ""
        elif key == "Environment":
            k, _, v = shlex.split(value)[0].partition("=")
            job["env"][k] = v
        elif key == "StandardOutput" and value.startswith("append:"):
            job["out"] = value[len("append:"):].replace("%%", "%")
    return job
scope = "user" if user else "system"
if cmd == "show-environment":
    sys.exit(0)
if cmd == "daemon-reload":
    sys.exit(0)
if cmd == "enable":
    open(os.path.join(STATE, f"enabled-{{scope}}-{{args[1]}}"), "w").close()
    sys.exit(0)
if cmd in ("start", "restart"):
    name = f"{{scope}}/{{args[1]}}"
    job = load(name)
    if cmd == "start" and job and alive(job):
        sys.exit(0)
    if job:
        stop(name, job)
    start(name, parse(args[1]))
    sys.exit(0)
if cmd == "stop":
    name = f"{{scope}}/{{args[1]}}"
    job = load(name)
    if job:
        stop(name, job)
    sys.exit(0)
if cmd == "is-active":
    job = load(f"{{scope}}/{{args[1]}}")
    print("active" if alive(job) else "inactive")
    sys.exit(0 if alive(job) else 3)
print(f"systemctl shim: unsupported {{args}}", file=sys.stderr)
sys.exit(64)
"""

LOGINCTL = r"""
args = sys.argv[1:]
if args[:1] == ["enable-linger"]:
    open(os.path.join(STATE, "linger-" + args[1]), "w").close()
    sys.exit(0)
if args[:1] == ["show-user"]:
    print("yes" if os.path.exists(os.path.join(STATE, "linger-" + args[1])) else "no")
    sys.exit(0)
sys.exit(64)
"""


def install(bin_dir: Path, state: Path, kind: str) -> None:
    """Write the shims for `kind` ("macos" or "systemd") into bin_dir."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    common = COMMON.format(python=sys.executable, state=str(state))
    scripts = (
        {"uname": UNAME, "launchctl": LAUNCHCTL, "security": SECURITY}
        if kind == "macos"
        else {"systemctl": SYSTEMCTL, "loginctl": LOGINCTL}
    )
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(common + body.format())
        path.chmod(0o755)


def calls(state: Path) -> list[list[str]]:
    import json

    log = state / "calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def stop_all(state: Path) -> None:
    """Stop every process a shim started (tests own what they start)."""
    import json
    import signal

    for job_file in (state / "jobs").glob("*.json") if (state / "jobs").exists() else []:
        pid = json.loads(job_file.read_text()).get("pid")
        if pid:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
