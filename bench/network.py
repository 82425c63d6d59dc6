"""The fleet across a real network, with the agents' default settings: what each failure costs.

    sudo uv run python bench/network.py [--tree DIR] [--only blip,dead,nas,sleep]

Builds the fleet of tests/netfleet.py (the head, two workers and a NAS, each in a network
namespace of its own, veth cables) and runs each scenario once:

- blip:  the head cut off from both workers for 45 s while w1 runs a 15 s task;
- dead:  every process in w1's namespace killed while it runs a 60 s task;
- nas:   w1's storage root on sshfs from the NAS namespace, the NAS's cable pulled for 45 s;
- sleep: w1's agent and task process frozen (SIGSTOP) for the lease (150 s) and 20 s more.

and prints one table: how long until w1 itself noticed (its log), until the head saw it (its
session gone, or its storage reported unavailable), until the task ran elsewhere, until w1
was back after the cable returned; the work done again (seconds of the task run twice), tasks
lost (must be 0) and tasks whose two attempts both ran to completion (must be 0: the second
is refused, its files never published). `--tree DIR` runs another checkout (the code before a
change) with the same harness. The last line is the table as JSON. Needs root (namespaces).
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if not p or not p.rstrip("/").endswith("/bench")]

import argparse
import json
import os
import re
import signal
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import netfleet

LOST = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) \w+ agent\.dbconn: database connection lost"
)


class Scenario:
    def __init__(self, root: Path, name: str) -> None:
        self.root = root / name
        self.root.mkdir(parents=True)
        self.fleet = netfleet.NetFleet(self.root)
        inventory = self.root / "inventory.yaml"
        self.storage = self.root / "storage"
        self.storage.mkdir()
        inventory.write_text(f"storage_root: {self.storage}\nhosts: {{}}\n")
        self.fleet.add("head")
        self.head = netfleet.Head(self.fleet, netfleet.cli_env(self.root / "home", inventory))
        self.envs: dict[str, dict[str, str]] = {}
        self.pg: psycopg.Connection[Any] | None = None

    def workers(self, *names: str) -> None:
        for n in names:
            self.fleet.add(n)
            self.fleet.link("head", n)
        self.head.serve()
        for n in names:
            self.envs[n] = netfleet.worker_env(self.head, n)

    def db(self) -> psycopg.Connection[Any]:
        if self.pg is None or self.pg.closed:
            from control.head.embedded import EmbeddedServer

            uri = EmbeddedServer(Path(self.head.env["CONTENTCTL_HOME"])).running_uri()
            assert uri is not None
            self.pg = psycopg.connect(uri, autocommit=True)
        return self.pg

    def one(self, sql: str, *args: Any) -> Any:
        row = self.db().execute(sql, args or None).fetchone()
        return None if row is None else row[0]

    def agent(self, name: str, *extra: str, argv: list[str] | None = None) -> Any:
        return self.fleet.spawn(
            name, argv or netfleet.agent_argv(name, *extra), self.envs[name],
            log=self.root / f"{name}.log",
        )  # fmt: skip

    def alive(self, name: str) -> bool:
        return bool(
            self.one(
                "SELECT session_key IN (SELECT contentctl_live_sessions()) FROM host_beats "
                "WHERE name = %s",
                name,
            )
        )

    def enqueue(self, task_type: str, payload: dict[str, Any]) -> int:
        out = self.head.cli("enqueue", task_type, "--payload", json.dumps(payload), "--json")
        return int(json.loads(out.stdout)[0]["id"])

    def task(self, task_id: int) -> dict[str, Any]:
        row = (
            self.db()
            .execute("SELECT state, host, attempts FROM tasks WHERE id = %s", (task_id,))
            .fetchone()
        )
        assert row is not None
        return {"state": row[0], "host": row[1], "attempts": row[2]}

    def noticed_at(self, name: str, after: float) -> float | None:
        """When the agent's log says its connection was lost (epoch seconds), after `after`."""
        for line in (self.root / f"{name}.log").read_text(errors="replace").splitlines():
            m = LOST.match(line)
            if m:
                at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if at >= after:
                    return at
        return None

    def refused(self, name: str, task_id: int) -> bool:
        said = (self.root / f"{name}.log").read_text(errors="replace")
        return f"task {task_id}: completion refused" in said

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()
        self.head.stop()
        self.fleet.close()


def wait(
    probe: Any, timeout: float, interval: float = 0.25, since: float | None = None
) -> float | None:
    """Seconds (from `since`, else from now) until `probe()` holds; None: not within
    `timeout` of now."""
    start = time.monotonic()
    origin = start if since is None else since
    while time.monotonic() - start < timeout:
        if probe():
            return time.monotonic() - origin
        time.sleep(interval)
    return None


def _outcome(s: Scenario, task: int, seconds: float, timeout: float) -> dict[str, Any]:
    wait(lambda: s.task(task)["state"] == "succeeded", timeout)
    t = s.task(task)
    return {
        "lost": int(t["state"] != "succeeded"),
        "redone_s": round(seconds * max(0, t["attempts"] - 1), 1),
        "twice": int(t["attempts"] > 1 and s.refused("w1", task)),
        "final_host": t["host"],
    }


def _running_on_w1(s: Scenario, payload: dict[str, Any]) -> tuple[int, Any]:
    """w1 and w2 online, a sleep task with `payload` running on w1: its id, w1's process."""
    s.workers("w1", "w2")
    w1 = s.agent("w1")
    wait(lambda: s.alive("w1"), 60)
    task = s.enqueue("sleep", payload)
    wait(lambda: s.task(task)["host"] == "w1", 60)
    s.agent("w2")
    wait(lambda: s.alive("w2"), 60)
    return task, w1


def blip(s: Scenario, cut_s: float = 45, task_s: float = 15) -> dict[str, Any]:
    """The head cut off from both workers (a head reboot, a switch blip): when the links
    return, w2 reconnects as w1 does, and its first beat's sweep looks at w1's lease."""
    task, _ = _running_on_w1(s, {"seconds": task_s})
    cut_wall, cut = time.time(), time.monotonic()
    s.fleet.cut("w1")
    s.fleet.cut("w2")
    head_saw = wait(lambda: not s.alive("w1"), cut_s)
    time.sleep(max(0.0, cut_s - (time.monotonic() - cut)))
    s.fleet.restore("w2")  # w2 back first (as in the field): its sweep sees w1's session gone
    wait(lambda: s.alive("w2"), 60)
    time.sleep(3)  # w2's first beats, and their sweep, before w1's cable returns
    s.fleet.restore("w1")
    restored = time.monotonic()
    back = wait(lambda: s.alive("w1"), 120)
    taken = wait(lambda: s.task(task)["host"] == "w2", 20, since=restored)
    noticed = s.noticed_at("w1", cut_wall)
    return {
        "agent_noticed_s": None if noticed is None else round(noticed - cut_wall, 1),
        "head_saw_s": None if head_saw is None else round(head_saw, 1),
        "taken_over_s": None if taken is None else round(cut_s + taken, 1),
        "back_s": None if back is None else round(back, 1),
        **_outcome(s, task, task_s, 120),
    }


def dead(s: Scenario, task_s: float = 60) -> dict[str, Any]:
    task, _ = _running_on_w1(s, {"seconds": task_s})
    time.sleep(3)
    s.fleet.kill_all("w1")
    killed = time.monotonic()
    head_saw = wait(lambda: not s.alive("w1"), 60)
    taken = wait(lambda: s.task(task)["host"] == "w2", 400, since=killed)
    s.agent("w1")
    back = wait(lambda: s.alive("w1"), 120)
    return {
        "agent_noticed_s": None,
        "head_saw_s": None if head_saw is None else round(head_saw, 1),
        "taken_over_s": None if taken is None else round(taken, 1),
        "back_s": None if back is None else round(back, 1),
        **_outcome(s, task, 3.0, task_s + 60),  # what w1 had done before it died is redone
    }


def nas(s: Scenario, cut_s: float = 45) -> dict[str, Any]:
    s.workers("w1")
    address, export, key = netfleet.start_nas(s.fleet, s.root, "w1")
    mount = s.root / "mnt"
    mount.mkdir()
    inv = s.root / "w1-inventory.yaml"
    inv.write_text(f"storage_root: {mount}\nhosts: {{}}\n")
    s.envs["w1"]["CONTENTCTL_INVENTORY"] = str(inv)
    s.agent("w1", argv=netfleet.sshfs_then(address, export, mount, key, netfleet.agent_argv("w1")))
    wait(lambda: s.alive("w1"), 60)
    time.sleep(6)

    def storage_ok() -> Any:
        return s.one("SELECT heartbeat->'storage'->>'ok' FROM host_beats WHERE name = 'w1'")

    wait(lambda: storage_ok() == "true", 60)
    beat0 = s.one("SELECT last_heartbeat_at FROM host_beats WHERE name = 'w1'")
    cut = time.monotonic()
    s.fleet.cut("nas")
    saw = wait(lambda: storage_ok() == "false", cut_s)
    time.sleep(max(0.0, cut_s - (time.monotonic() - cut)))
    beats = s.one("SELECT last_heartbeat_at > %s FROM host_beats WHERE name = 'w1'", beat0)
    s.fleet.restore("nas")
    back = wait(lambda: storage_ok() == "true", 120)
    return {
        "agent_noticed_s": None,
        "head_saw_s": None if saw is None else round(saw, 1),
        "taken_over_s": None,
        "back_s": None if back is None else round(back, 1),
        "beats_during_cut": bool(beats),
        "lost": 0,
        "redone_s": 0,
        "twice": 0,
    }


def sleep(s: Scenario, task_s: float = 30, frozen_s: float = 170) -> dict[str, Any]:
    task, w1 = _running_on_w1(s, {"seconds": task_s, "out": "proof/who.json"})
    time.sleep(3)
    # `ip netns exec` -> python: the agent and its task processes
    frozen = [p.pid for p in psutil.Process(w1.pid).children(recursive=True)] + [w1.pid]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    froze = time.monotonic()
    taken = wait(lambda: s.task(task)["host"] == "w2", frozen_s)
    time.sleep(max(0.0, frozen_s - (time.monotonic() - froze)))
    for pid in frozen:
        os.kill(pid, signal.SIGCONT)
    back = wait(lambda: s.alive("w1"), 60)
    out = _outcome(s, task, 3.0, task_s + 120)
    time.sleep(task_s)  # w1's attempt finishes and answers
    final = s.task(task)
    proof = s.storage / "proof/who.json"  # (trees before `sleep` wrote a file: none)
    who = json.loads(proof.read_text()) if proof.exists() else {}
    out["files_of_winner"] = who.get("attempt") == final["attempts"] if who else None
    return {
        "agent_noticed_s": None,
        "head_saw_s": None,
        "taken_over_s": None if taken is None else round(taken, 1),
        "back_s": None if back is None else round(back, 1),
        **out,
    }


SCENARIOS = {"blip": blip, "dead": dead, "nas": nas, "sleep": sleep}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", help="another checkout to run (the code before a change)")
    ap.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated")
    args = ap.parse_args()
    if args.tree:
        os.environ["CONTENTCTL_FLEET_TREE"] = str(Path(args.tree).resolve())
        netfleet.REPO = Path(args.tree).resolve()
    why = netfleet.can_make_namespaces()
    if why:
        print(f"network bench: {why}", file=sys.stderr)
        return 2
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="contentctl-netbench-") as tmp:
        for name in args.only.split(","):
            s = Scenario(Path(tmp), name)
            print(f"{name}...", file=sys.stderr, flush=True)
            try:
                rows[name] = SCENARIOS[name](s)
            except Exception as exc:  # a scenario the tree cannot run: say so, go on
                rows[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            finally:
                s.close()
    cols = ("agent_noticed_s", "head_saw_s", "taken_over_s", "back_s", "redone_s", "lost", "twice")
    print(f"tree: {netfleet.REPO}")
    print(f"{'scenario':10}" + "".join(f"{c:>17}" for c in cols))
    for name, r in rows.items():
        cells = "".join(f"{'-' if r.get(c) is None else r.get(c)!s:>17}" for c in cols)
        print(f"{name:10}{cells}" + (f"  {r['error']}" if "error" in r else ""))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
