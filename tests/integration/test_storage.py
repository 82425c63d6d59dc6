"""The NAS goes away under running agents, for real: the storage root is a bind mount the test
makes (as root) of a directory holding the fleet's marker; the test unmounts it, the agents say
`storage unavailable` and take only diagnostic work, reconcile refuses; the test mounts it
again and the waiting pipeline work runs. Nothing fails, nothing is lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from control.core import db
from control.core.queue import Queue, TaskSpec
from control.core.storage_health import is_mount_point
from tests.helpers import contentctl, holds, wait_for

pytestmark = pytest.mark.slow
FAST = ("--heartbeat", "0.5", "--lease", "5")
SPEECH = Path(__file__).parent.parent.parent / "control" / "head" / "assets" / "speech.ogg"


def _mounted(path: Path) -> bool:
    return is_mount_point(path)  # a bind mount of a directory, too (os.path.ismount misses it)


@pytest.fixture
def nas(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(share, mount point): the share bind-mounted on the mount point; unmounted at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a stand-in NAS needs root and mount(8)")
    share, point = tmp_path / "share", tmp_path / "mnt" / "nas"
    share.mkdir()
    point.mkdir(parents=True)
    done = subprocess.run(["mount", "--bind", str(share), str(point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"bind mounts are not allowed here: {done.stderr.decode().strip()}")
    try:
        yield share, point
    finally:
        while _mounted(point):
            subprocess.run(["umount", "-l", str(point)], check=False)


async def test_nas_lost_then_back_under_two_agents(
    nas: tuple[Path, Path],
    agent_env: dict[str, str],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    queue: Queue,
    conn: db.AsyncConn,
) -> None:
    share, point = nas
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(f"storage_root: {point}\n")
    # marking an empty local directory is refused: only a mount point, only empty
    init = contentctl(agent_env, "storage", "init", "--json")
    assert init.returncode == 0, init.stderr
    storage_id = json.loads(init.stdout)["storage_id"]
    assert json.loads((share / ".contentctl-storage").read_text())["storage_id"] == storage_id

    for host in ("nas-a", "nas-b"):
        spawn_agent("--host", host, "--concurrency", "2", *FAST)

    async def host_storage() -> dict[str, dict[str, object]]:
        cur = await conn.execute("SELECT name, heartbeat->'storage' AS s FROM host_beats")
        return {str(r["name"]): r["s"] for r in await cur.fetchall() if r["s"]}  # type: ignore[misc]

    async def all_ok(ok: bool) -> bool:
        seen = await host_storage()
        return len(seen) == 2 and all(s["ok"] is ok for s in seen.values())

    await wait_for(lambda: all_ok(True), 20)

    subprocess.run(["umount", "-l", str(point)], check=True)  # the NAS is gone
    t0 = time.monotonic()
    await wait_for(lambda: all_ok(False), 10, interval_s=0.1)
    lost_after = time.monotonic() - t0
    print(f"NAS loss reported by both hosts after {lost_after:.2f} s")
    assert lost_after < 1.5  # within two heartbeats (0.5 s each) and a check
    seen = await host_storage()
    assert all("no storage marker" in str(s["error"]) for s in seen.values())

    # pipeline work waits; diagnostic work still runs
    (share / "media" / "1").mkdir(parents=True)
    shutil.copy(SPEECH, share / "media" / "1" / "source.ogg")
    payload = {"input": "media/1/source.ogg", "out_dir": "media/1"}
    [audio] = await queue.enqueue([TaskSpec("extract_audio", payload=payload)])
    [noop] = await queue.enqueue([TaskSpec("noop")])

    async def state(task_id: int) -> str:
        cur = await conn.execute("SELECT state FROM tasks WHERE id = %s", (task_id,))
        return str((await cur.fetchone() or {})["state"])

    await wait_for(lambda: _is(state(noop.id), "succeeded"), 15)
    await holds(lambda: _is(state(audio.id), "queued"), 1.5)  # three heartbeats
    status = json.loads(contentctl(agent_env, "status", "--json").stdout)
    reasons = {h["name"]: h["idle_reason"] for h in status["hosts"]}
    assert all(str(r).startswith("storage unavailable:") for r in reasons.values()), reasons
    assert all(h["storage"]["ok"] is False for h in status["hosts"])

    # reconcile refuses while the root lacks the marker, and creates nothing
    fixed = contentctl(agent_env, "reconcile", "--fix")
    assert fixed.returncode == 1 and "storage unavailable" in fixed.stderr, fixed.stderr
    assert list(point.iterdir()) == []
    checked = contentctl(agent_env, "storage", "check", "--json")
    assert checked.returncode == 1
    assert json.loads(checked.stdout)["here"]["ok"] is False

    subprocess.run(["mount", "--bind", str(share), str(point)], check=True)  # back
    await wait_for(lambda: all_ok(True), 10)
    await wait_for(lambda: _is(state(audio.id), "succeeded"), 60)
    assert (share / "media" / "1" / "audio.wav").stat().st_size > 1000
    cur = await conn.execute("SELECT count(*) AS n FROM tasks WHERE state = 'failed'")
    assert (await cur.fetchone() or {})["n"] == 0  # nothing failed


async def _is(probe: object, expected: str) -> bool:
    return await probe == expected  # type: ignore[misc]


def test_storage_init_refuses_a_plain_directory(agent_env: dict[str, str], tmp_path: Path) -> None:
    plain = tmp_path / "not-a-mount"
    plain.mkdir()
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(f"storage_root: {plain}\n")
    out = contentctl(agent_env, "storage", "init")
    assert out.returncode == 2 and "not a mount point" in out.stderr, out.stderr
    assert not (plain / ".contentctl-storage").exists()
    gone = tmp_path / "missing"
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(f"storage_root: {gone}\n")
    out = contentctl(agent_env, "reconcile", "--fix")
    assert out.returncode == 1 and "does not exist" in out.stderr, out.stderr
    assert not gone.exists()  # never created


MOUNT_SHIM = """#!{python}
# Stands in for `mount -t cifs` (no cifs on this kernel): records its arguments, checks the
# credentials file, then bind-mounts the test's share where the agent asked.
import json, os, stat, subprocess, sys
args = sys.argv[1:]
with open({log!r}, "a") as fh:
    fh.write(json.dumps(args) + "\\n")
if args[:2] != ["-t", "cifs"]:
    os.execv("/bin/mount", ["mount", *args])
cred = args[args.index("-o") + 1].split("credentials=")[1].split(",")[0]
mode = stat.S_IMODE(os.stat(cred).st_mode)
text = open(cred).read()
seen = {{"cred_mode": oct(mode), "cred_has_password": "password=" in text}}
with open({log!r}, "a") as fh:
    fh.write(json.dumps(seen) + "\\n")
sys.exit(subprocess.run(["/bin/mount", "--bind", {share!r}, args[3]]).returncode)
"""


async def test_the_agent_mounts_the_nas_again_when_it_is_lost(
    nas: tuple[Path, Path],
    agent_env: dict[str, str],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    conn: db.AsyncConn,
    tmp_path: Path,
) -> None:
    import sys

    share, point = nas
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(
        f"storage_root: {point}\n"
        f"nas: {{url: 'smb://nas.local/content', user: signal4, mount_point: {point}}}\n"
    )
    assert contentctl(agent_env, "storage", "init").returncode == 0
    shims = tmp_path / "shims"
    shims.mkdir()
    log = tmp_path / "mount.log"
    (shims / "mount").write_text(
        MOUNT_SHIM.format(python=sys.executable, log=str(log), share=str(share))
    )
    (shims / "mount").chmod(0o755)
    env = {
        **agent_env,
        "PATH": f"{shims}:{os.environ['PATH']}",
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "keys"),
    }
    subprocess.run(
        [sys.executable, "-m", "keyring", "set", "contentctl", "nas_password"],
        input="nas-Secret-9\n", env=env, text=True, check=True,
    )  # fmt: skip
    spawn_agent("--host", "mounter", *FAST, env=env)

    async def ok() -> bool:
        cur = await conn.execute("SELECT heartbeat->'storage'->>'ok' AS ok FROM host_beats")
        row = await cur.fetchone()
        return bool(row and row["ok"] == "true")

    await wait_for(ok, 20)
    subprocess.run(["umount", "-l", str(point)], check=True)  # the NAS drops
    t0 = time.monotonic()
    await wait_for(lambda: _remounted(point), 20, interval_s=0.1)
    print(f"NAS mounted again by the agent after {time.monotonic() - t0:.2f} s")
    await wait_for(ok, 10)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    [mount_call] = [c for c in calls if isinstance(c, list) and c[:2] == ["-t", "cifs"]]
    assert mount_call[2:4] == ["//nas.local/content", str(point)]
    assert "nas-Secret-9" not in json.dumps(calls)  # never in argv
    [cred] = [c for c in calls if isinstance(c, dict)]
    assert cred == {"cred_mode": "0o600", "cred_has_password": True}


async def _remounted(point: Path) -> bool:
    return (point / ".contentctl-storage").exists()
