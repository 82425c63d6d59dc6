"""The fleet across a real network: the head and each worker in a network namespace of its own,
joined by veth cables the test pulls (tests/netfleet.py). Agents run with their defaults but a
short heartbeat (0.5 s), so that the tests see beats quickly; leases and the grace after a
session ends are the defaults unless a test says otherwise.

Each test owns its namespaces, processes and mounts and removes them when it ends, failed or
not; they skip with the reason where this machine cannot make namespaces."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import wait_until
from tests.netfleet import (
    Head,
    NetFleet,
    agent_argv,
    can_make_namespaces,
    cli_env,
    net_fleet,
    sshfs_then,
    start_nas,
    worker_env,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(why := can_make_namespaces()), reason=why or ""),
]

BEAT = ("--heartbeat", "0.5")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[NetFleet]:
    with net_fleet(tmp_path) as made:
        yield made


@pytest.fixture
def head(fleet: NetFleet, tmp_path: Path) -> Iterator[Head]:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts: {}\n")
    fleet.add("head")
    h = Head(fleet, cli_env(tmp_path / "home", inventory))
    try:
        yield h
    finally:
        h.stop()


def _workers(fleet: NetFleet, head: Head, *names: str) -> list[dict[str, str]]:
    """Each worker in its namespace, cabled to the head; the head serving on its links; the
    workers' environments (their own database roles, pointed at their link's head end)."""
    for name in names:
        fleet.add(name)
        fleet.link("head", name)
    head.serve()
    return [worker_env(head, name) for name in names]


def _task(head: Head, task_id: int) -> dict[str, object]:
    return dict(json.loads(head.cli("task", str(task_id), "--json").stdout))


def _enqueue(head: Head, task_type: str, payload: dict[str, object]) -> int:
    out = head.cli("enqueue", task_type, "--payload", json.dumps(payload), "--json")
    return int(json.loads(out.stdout)[0]["id"])


def _online(head: Head, name: str) -> bool:
    return head.host(name).get("state") == "online"


def test_a_blip_shorter_than_the_grace_redoes_no_work(
    fleet: NetFleet, head: Head, tmp_path: Path
) -> None:
    """The head cut off from a worker for 30 s while its task finishes: the worker's session
    ends at the server ~20 s into the cut (before: the next sweep handed the task to the other
    worker, and the first one's finished work was refused). With the grace, the worker comes
    back, re-keys its lease and its completion is accepted: the task ran once."""
    env1, env2 = _workers(fleet, head, "w1", "w2")
    fleet.spawn("w1", agent_argv("w1", *BEAT), env1, log=tmp_path / "w1.log")
    wait_until("w1 online", lambda: _online(head, "w1"), 30)
    task = _enqueue(head, "sleep", {"seconds": 10})  # finishes during the cut
    wait_until("running on w1", lambda: _task(head, task)["host"] == "w1", 20)
    fleet.spawn("w2", agent_argv("w2", *BEAT), env2, log=tmp_path / "w2.log")
    wait_until("w2 online", lambda: _online(head, "w2"), 30)

    fleet.cut("w1")
    cut_at = time.monotonic()
    wait_until("w1's session seen gone", lambda: head.host("w1").get("session_alive") is False, 40)
    time.sleep(max(0.0, 30 - (time.monotonic() - cut_at)))
    fleet.restore("w1")
    done = wait_until("the task done", lambda: _task(head, task)["state"] == "succeeded", 60)
    assert done
    final = _task(head, task)
    assert (final["host"], final["attempts"]) == ("w1", 1), final  # once, by w1
    wait_until("w1 online again", lambda: _online(head, "w1"), 30)
    assert "w2" not in (tmp_path / "w1.log").read_text()


def test_a_worker_that_dies_is_taken_over_and_comes_back_saying_why(
    fleet: NetFleet, head: Head, tmp_path: Path
) -> None:
    """Every process in w1's namespace killed at once (power lost) while it runs a task: w2
    takes the task over once the grace after w1's session ended has passed (5 s here), finishes
    it once; w1's agent, started again as its service manager would, comes back online and
    `status` says how it last stopped."""
    env1, env2 = _workers(fleet, head, "w1", "w2")
    fleet.spawn("w1", agent_argv("w1", *BEAT), env1, log=tmp_path / "w1.log")
    wait_until("w1 online", lambda: _online(head, "w1"), 30)
    task = _enqueue(head, "sleep", {"seconds": 6})
    wait_until("running on w1", lambda: _task(head, task)["host"] == "w1", 20)
    fleet.spawn("w2", agent_argv("w2", *BEAT, "--lease-grace", "5"), env2, log=tmp_path / "w2.log")
    wait_until("w2 online", lambda: _online(head, "w2"), 30)

    assert fleet.kill_all("w1")
    killed = time.monotonic()
    wait_until("taken over by w2", lambda: _task(head, task)["host"] == "w2", 60)
    taken_s = time.monotonic() - killed
    assert taken_s < 5 + 30, taken_s  # the grace, a sweep turn, and a beat of w2's
    wait_until("done once", lambda: _task(head, task)["state"] == "succeeded", 30)
    assert _task(head, task)["attempts"] == 2

    fleet.spawn("w1", agent_argv("w1", *BEAT), env1, log=tmp_path / "w1.log")
    wait_until("w1 back online", lambda: _online(head, "w1"), 30)
    restart = head.host("w1").get("last_restart") or {}
    assert restart.get("reason") == "crash", restart  # killed, not stopped (same boot)


def test_a_laptop_that_sleeps_past_its_lease_loses_the_task_and_not_the_winners_files(
    fleet: NetFleet, head: Head, tmp_path: Path
) -> None:
    """w1's agent and task process frozen (SIGSTOP) for longer than the lease (3 s here): the
    kernel keeps its session alive, so the lease runs out on its time and w2 takes the task
    over and writes its output. Woken (SIGCONT), w1's attempt finishes too: its completion is
    refused and its file never replaces w2's; w1 rejoins by itself."""
    storage = tmp_path / "storage"
    storage.mkdir()
    (tmp_path / "inventory.yaml").write_text(f"storage_root: {storage}\nhosts: {{}}\n")
    env1, env2 = _workers(fleet, head, "w1", "w2")
    lease = ("--lease", "3")
    w1 = fleet.spawn("w1", agent_argv("w1", *BEAT, *lease), env1, log=tmp_path / "w1.log")
    wait_until("w1 online", lambda: _online(head, "w1"), 30)
    task = _enqueue(head, "sleep", {"seconds": 4, "out": "proof/who.json"})
    wait_until("running on w1", lambda: _task(head, task)["host"] == "w1", 20)
    frozen = [w1.pid, *(p.pid for p in psutil.Process(w1.pid).children(recursive=True))]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        fleet.spawn("w2", agent_argv("w2", *BEAT, *lease), env2, log=tmp_path / "w2.log")
        wait_until("w2 took it", lambda: _task(head, task)["host"] == "w2", 40)
        wait_until("w2 done", lambda: _task(head, task)["state"] == "succeeded", 30)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    wait_until("w1 rejoins", lambda: _online(head, "w1"), 30)

    def w1_let_go() -> bool:  # its lease found lost, or its completion refused
        said = (tmp_path / "w1.log").read_text()
        return any(
            f"task {task}{what}" in said
            for what in (" abandoned", ": lease lost", ": completion refused")
        )

    wait_until("w1's attempt let go", w1_let_go, 30)
    final = _task(head, task)
    assert (final["host"], final["attempts"], final["state"]) == ("w2", 2, "succeeded")
    assert json.loads((storage / "proof/who.json").read_text())["attempt"] == 2
    assert not list((storage / "proof").glob(".*.part"))  # w1's output removed, not left


@pytest.mark.skipif(
    not Path("/usr/sbin/sshd").exists() or not Path("/usr/bin/sshfs").exists(),
    reason="needs openssh-server and sshfs (.ci/run installs them)",
)
def test_a_nas_that_hangs_never_stops_the_heartbeat(
    fleet: NetFleet, head: Head, tmp_path: Path
) -> None:
    """w1's storage root is an sshfs mount from the NAS namespace. The NAS's cable pulled, the
    mount hangs (stat() blocks, as a real NAS does): w1 keeps beating and reports its storage
    unavailable within seconds (before: the heartbeat's free-space reading sat in the FUSE wait
    and no beat was written for the whole cut, `storage: ok` all along); work that needs
    storage waits, diagnostic work goes on; with the cable back, storage work resumes."""
    [env1] = _workers(fleet, head, "w1")
    nas_addr, export, key = start_nas(fleet, tmp_path, "w1")
    mount = tmp_path / "mnt"
    mount.mkdir()
    inventory = tmp_path / "w1-inventory.yaml"
    inventory.write_text(f"storage_root: {mount}\nhosts: {{}}\n")
    env1 = {**env1, "CONTENTCTL_INVENTORY": str(inventory)}
    argv = sshfs_then(nas_addr, export, mount, key, agent_argv("w1", *BEAT))
    fleet.spawn("w1", argv, env1, log=tmp_path / "w1.log")
    wait_until("w1 online with its storage", lambda: (head.host("w1").get("storage") or {})
               .get("ok") is True, 40)  # fmt: skip

    fleet.cut("nas")
    cut_at = time.monotonic()
    wait_until(
        "storage reported unavailable",
        lambda: (head.host("w1").get("storage") or {}).get("ok") is False,
        20,
    )
    seen_s = time.monotonic() - cut_at
    assert seen_s < 15, seen_s
    stored = _enqueue(head, "extract_audio", {"input": "media/1/source.ogg", "out_dir": "media/1"})
    probe = _enqueue(head, "noop", {})
    wait_until("diagnostic work goes on", lambda: _task(head, probe)["state"] == "succeeded", 20)
    beat_at = head.host("w1")["last_heartbeat_at"]
    wait_until(  # beats keep coming while the mount hangs
        "a beat during the cut", lambda: head.host("w1")["last_heartbeat_at"] != beat_at, 20
    )
    entry = head.host("w1")
    assert entry["state"] == "online" and entry["heartbeat_age_s"] < 60, entry
    assert _task(head, stored)["state"] == "queued"  # waits for the storage, not lost

    fleet.restore("nas")
    wait_until("storage back", lambda: (head.host("w1").get("storage") or {}).get("ok") is True, 40)
    wait_until("storage work resumes", lambda: _task(head, stored)["state"] != "queued", 30)


@pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="needs openssh-server")
def test_a_worker_provisioned_across_the_network(
    fleet: NetFleet, head: Head, tmp_path: Path
) -> None:
    """`provision` run from the head's namespace to an sshd in w1's: code sync, the Python
    environment and the agent's start cross the veth cable, and the agent it starts reaches
    the head's database over it, with its own role, and works."""
    import sys

    from tests import sshd
    from tests.netfleet import start_sshd_in

    fleet.add("w1")
    link = fleet.link("head", "w1")
    user_key = tmp_path / "userkey"
    sshd._keygen(user_key)
    start_sshd_in(fleet, "w1", link.far_addr, tmp_path, user_key)
    Path(head.env["CONTENTCTL_INVENTORY"]).write_text(
        f"known_hosts: {tmp_path / 'known_hosts'}\nhosts:\n  w1:\n    address: {link.far_addr}\n"
        f"    user: root\n    identity_file: {user_key}\n    base_dir: {tmp_path / 'w1-base'}\n"
        "    keyring_backend: keyrings.alt.file.PlaintextKeyring\n    enabled_tasks: [noop]\n"
    )
    head.cli("status")
    head.cli("db", "stop")
    served = fleet.run(
        "head",
        [sys.executable, "-m", "tui.launcher", "db", "serve", "--listen", "0.0.0.0",
         "--advertise", link.near_addr],
        head.env,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr
    done = fleet.run(
        "head",
        [sys.executable, "-m", "tui.launcher", "provision", "w1", "--yes",
         "--accept-new-host-keys"],
        head.env,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "w1: changed" in done.stdout
    wait_until("w1 online", lambda: _online(head, "w1"), 60)
    task = _enqueue(head, "noop", {})
    wait_until("done on w1", lambda: _task(head, task)["state"] == "succeeded", 30)
    assert _task(head, task)["host"] == "w1"
    env_file = (tmp_path / "w1-base").rglob("agent.env")
    assert any(f"@{link.near_addr}:" in p.read_text() for p in env_file)
