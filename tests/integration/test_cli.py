"""The command line against a real database: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from control.core import db
from control.core.queue import Queue, TaskSpec
from tests.helpers import contentctl
from tui.launcher import main

Run = Callable[..., tuple[int, str, str]]

INVENTORY = """
hosts:
  mac-1:
    address: 127.0.0.2
    enabled_tasks: [transcribe, noop]
    max_concurrent_tasks: 2
  nas-box:
    address: 127.0.0.3
    enabled: false
"""


@pytest.fixture
def cli(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(INVENTORY)
    monkeypatch.setenv("CONTENTCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CONTENTCTL_INVENTORY", str(inv))
    monkeypatch.setenv("CONTENTCTL_DATABASE_URL", db_url)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def count_tasks(db_url: str) -> int:
    with psycopg.connect(db_url) as c:
        row = c.execute("SELECT count(*) FROM tasks").fetchone()
        return int(row[0]) if row else 0


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and " INFO " not in ln]
    assert len(lines) == 1, err
    return lines[0]


def test_enqueue_then_list_and_show(cli: Run) -> None:
    code, out, _ = cli(
        "enqueue",
        "sleep",
        "--payload",
        '{"seconds": 2}',
        "--count",
        "3",
        "--priority",
        "4",
        "--json",
    )
    assert code == 0
    ids = [r["id"] for r in json.loads(out)]
    assert len(ids) == 3

    code, out, _ = cli("tasks", "--state", "queued", "--type", "sleep", "--json")
    assert code == 0
    listed = json.loads(out)
    assert sorted(t["id"] for t in listed) == sorted(ids)

    code, out, _ = cli("task", str(ids[0]), "--json")
    task: dict[str, Any] = json.loads(out)
    contract_keys = {
        "id",
        "type",
        "state",
        "priority",
        "attempts",
        "max_attempts",
        "host",
        "payload",
        "result",
        "error",
        "progress",
        "media_id",
        "created_at",
        "started_at",
        "finished_at",
    }
    assert contract_keys <= task.keys()
    assert task["payload"] == {"seconds": 2} and task["priority"] == 4
    assert task["state"] == "queued"

    code, out, _ = cli("tasks")
    assert code == 0 and "sleep" in out and "queued" in out


def test_unique_key_and_delay(cli: Run) -> None:
    _, out1, _ = cli("enqueue", "noop", "--unique-key", "ep-1", "--json")
    _, out2, _ = cli("enqueue", "noop", "--unique-key", "ep-1", "--json")
    assert json.loads(out1)[0]["id"] == json.loads(out2)[0]["id"]
    assert json.loads(out2)[0]["created"] is False
    _, out, _ = cli("enqueue", "noop", "--delay", "600", "--json")
    _, shown, _ = cli("task", str(json.loads(out)[0]["id"]), "--json")
    assert json.loads(shown)["state"] == "scheduled"


def test_status_json_follows_the_contract(cli: Run) -> None:
    cli("enqueue", "noop", "--count", "2")
    code, out, _ = cli("status", "--json")
    assert code == 0
    snap = json.loads(out)
    version = str(db.code_schema_version())
    assert snap["database"] == {"reachable": True, "schema_version": version}
    assert snap["queue"]["by_type"]["noop"]["queued"] == 2
    assert snap["queue"]["totals"]["queued"] == 2
    hosts = {h["name"]: h for h in snap["hosts"]}
    assert hosts["mac-1"]["state"] == "offline"  # declared, never heartbeated
    assert hosts["mac-1"]["enabled_tasks"] == ["transcribe", "noop"]
    assert hosts["nas-box"]["state"] == "disabled"
    for h in snap["hosts"]:
        assert {
            "name",
            "address",
            "state",
            "heartbeat_age_s",
            "load",
            "running",
            "enabled_tasks",
            "idle_reason",
        } <= h.keys()
    code, out, _ = cli("status")
    assert code == 0 and "mac-1" in out and "disabled" in out


def test_cancel_and_retry(cli: Run, db_url: str) -> None:
    _, out, _ = cli("enqueue", "noop", "--json")
    tid = json.loads(out)[0]["id"]
    code, out, _ = cli("cancel", str(tid))
    assert code == 0 and "cancelled" in out
    code, _, err = cli("cancel", str(tid))
    assert code == 1 and str(tid) in err  # already finished: said, and non-zero

    code, _, err = cli("retry", str(tid))
    assert code == 1 and "not failed" in err
    code, _, err = cli("retry")
    assert code == 2 and "--failed" in one_line(err)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("enqueue", "noop", "--payload", "{"), "--payload is not valid JSON"),
        (("enqueue", "noop", "--payload", "[1]"), "JSON object"),
        (("enqueue", "transcode", "--count", "2"), "unknown task type 'transcode'"),
        (("enqueue", "noop", "--count", "-1"), "--count must be between 1 and"),
        (("enqueue", "noop", "--delay", "-5"), "seconds must be between 0 and"),
        (("tasks", "--state", "done"), "invalid choice"),
        (("task", "abc"), "an id is a whole number"),
        (("add", "https://example.org/v", "--language", "e$(id)"), "is not a language code"),
        (("add", "https://example.org/v", "--prompt", "x" * 1001), "over 1000 characters"),
        (("source", "add", "https://example.org/f", "--language", "1"), "not a language code"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    cli: Run, db_url: str, args: tuple[str, ...], needle: str
) -> None:
    code, _, err = cli(*args)
    assert code == 2
    assert needle in one_line(err)
    assert "Traceback" not in err
    assert count_tasks(db_url) == 0


def test_unreachable_database_is_one_line_exit_2_without_the_password(
    cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "CONTENTCTL_DATABASE_URL", "postgresql://agent:hunter2secret@127.0.0.1:1/contentctl"
    )
    code, _, err = cli("status")
    assert code == 2
    line = one_line(err)
    assert "cannot reach the database" in line and "127.0.0.1:1" in line
    assert "hunter2secret" not in err
    code, _, err = cli("enqueue", "noop", "--db", "postgresql://x@/nowhere?host=/nonexistent")
    assert code == 2 and "cannot reach the database" in one_line(err)


def test_a_stopped_server_is_one_line_exit_2(cli: Run, own_pg_home: Path) -> None:
    from control.head.embedded import EmbeddedServer

    server = EmbeddedServer(own_pg_home)
    url = server.ensure_running()
    try:
        assert cli("status", "--db", url)[0] == 0
    finally:
        server.stop()
    code, _, err = cli("status", "--db", url)
    assert code == 2 and "cannot reach the database" in one_line(err)


def test_unknown_schema_versions_are_named(cli: Run, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("INSERT INTO contentctl_schema (version, name) VALUES (99, 'future')")
    code, _, err = cli("status")
    assert code == 2
    line = one_line(err)
    known = db.code_schema_version()
    assert "version 99" in line and f"up to {known}" in line and "upgrade contentctl" in line


def test_an_older_schema_asks_for_migrate(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    known = db.code_schema_version()
    monkeypatch.setattr("control.core.db.code_schema_version", lambda: known + 1)
    code, _, err = cli("status")
    assert code == 2
    line = one_line(err)
    assert f"version {known}" in line and f"needs version {known + 1}" in line
    assert "contentctl db migrate" in line


def test_malformed_inventory_names_file_line_and_key(
    cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = tmp_path / "bad.yaml"
    inv.write_text("hosts:\n  mac-1:\n    address: 10.0.0.1\n    max_concurent_tasks: 2\n")
    code, _, err = cli("status", "--inventory", str(inv))
    assert code == 2
    line = one_line(err)
    assert f"{inv}:4" in line and "max_concurent_tasks" in line and "unknown key" in line


STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")


def _stamps(value: object) -> list[str]:
    """Every string in a JSON document that looks like a date and time."""
    if isinstance(value, str):
        return [value] if re.match(r"^\d{4}-\d\d-\d\d[ T]\d", value) else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _stamps(v)]
    if isinstance(value, list):
        return [s for v in value for s in _stamps(v)]
    return []


async def test_every_timestamp_in_json_has_one_shape(
    agent_env: dict[str, str], queue: Queue, conn: db.AsyncConn
) -> None:
    """Before: `2026-12-02 00:48:21.68+00:00`, `...Z` and `...T...+00:00` side by side. Now ISO
    8601 with `T` and an explicit offset everywhere (docs/contract.md)."""
    [t] = await queue.enqueue([TaskSpec("noop")])
    [claimed] = await queue.claim("w1", ["noop"], limit=1)
    await queue.complete(claimed)
    await conn.execute("INSERT INTO media_items (kind, source, title) VALUES ('file', '/x', 'x')")
    assert contentctl(agent_env, "schedule", "add", "s", "noop", "--every", "1h").returncode == 0
    seen = []
    for args in (
        ("status",), ("tasks",), ("task", str(t.id)), ("media",), ("schedule", "list"),
        ("audit",), ("source", "list"),
    ):  # fmt: skip
        out = contentctl(agent_env, *args, "--json")
        assert out.returncode == 0, (args, out.stderr)
        seen += [(args, s) for s in _stamps(json.loads(out.stdout))]
    assert seen, "no timestamps looked at"
    bad = [(a, s) for a, s in seen if not STAMP.match(s)]
    assert not bad, bad


async def test_agent_forget_removes_an_undeclared_host_that_holds_nothing(
    agent_env: dict[str, str], queue: Queue, conn: db.AsyncConn
) -> None:
    """Demo agents stayed in `status` forever as offline (undeclared)."""
    for name in ("demo-1", "busy"):
        await conn.execute("INSERT INTO hosts (name) VALUES (%s)", (name,))
        await conn.execute(
            "INSERT INTO host_beats (name, agent_state) VALUES (%s, 'stopped')", (name,)
        )
    await queue.enqueue([TaskSpec("noop")])
    await queue.claim("busy", ["noop"], limit=1)
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text("hosts:\n  mac-1: {address: 127.0.0.2}\n")
    out = contentctl(agent_env, "agent", "forget", "demo-1", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"host": "demo-1", "forgotten": True}
    names = [
        h["name"] for h in json.loads(contentctl(agent_env, "status", "--json").stdout)["hosts"]
    ]
    assert "demo-1" not in names and "busy" in names
    for host, said in (("busy", "running task"), ("mac-1", "declared"), ("nope", "no host")):
        out = contentctl(agent_env, "agent", "forget", host)
        assert out.returncode == 2 and said in out.stderr, (host, out.stderr)
    listed = json.loads(contentctl(agent_env, "audit", "--json").stdout)
    assert any(a["action"] == "agent forget" and a["targets"] == ["demo-1"] for a in listed)
