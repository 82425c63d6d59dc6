"""Bad values on the command line are refused in one line with exit 2, never an internal error,
and nothing is written: each test is the probe, then the check that nothing changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from control.core import db
from control.core.queue import Queue, TaskSpec
from control.head.embedded import EmbeddedServer
from tests.helpers import contentctl, wait_for

pytestmark = pytest.mark.slow

PROBES = [
    ("enqueue", "noop", "--priority", "99999999999999"),
    ("enqueue", "noop", "--delay", "nan"),
    ("enqueue", "noop", "--delay", "inf"),
    ("enqueue", "noop", "--timeout", "inf"),
    ("enqueue", "noop", "--timeout", "-1"),
    ("enqueue", "noop", "--count", "100000000"),
    ("enqueue", "noop", "--max-attempts", "0"),
    ("enqueue", "noop", "--payload", '{"x": NaN}'),
    ("enqueue", "noop", "--payload", '{"x": Infinity}'),
    ("task", "99999999999999999999999"),
    ("media", "abc"),
    ("media", "retry", "-3"),
    ("tasks", "--db", "postgresql://u@h:abc/d"),
    ("tasks", "--db", "postgresql://u@[::1/d"),
    ("tasks", "--db", "mysql://u@h/d"),
    ("logs", "all", "--since", "forever"),
    ("logs", "all", "--level", "LOUD"),
]


@pytest.mark.parametrize("args", PROBES, ids=[" ".join(p) for p in PROBES])
async def test_bad_values_are_one_line_exit_2_and_change_nothing(
    args: tuple[str, ...], agent_env: dict[str, str], conn: db.AsyncConn
) -> None:
    out = contentctl(agent_env, *args)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert "internal error" not in out.stderr and "Traceback" not in out.stderr
    cur = await conn.execute("SELECT count(*) AS n FROM tasks")
    assert (await cur.fetchone() or {})["n"] == 0


async def test_logs_filter_by_level_and_age_and_speak_json_lines(
    agent_env: dict[str, str], conn: db.AsyncConn
) -> None:
    await conn.execute(
        "INSERT INTO agent_logs (host, ts, level, logger, message) VALUES "
        "('h', now() - interval '3 hours', 'ERROR', 'x', 'old error'),"
        "('h', now(), 'INFO', 'x', 'fresh info'),"
        "('h', now(), 'WARNING', 'x', 'fresh warning')"
    )
    out = contentctl(agent_env, "logs", "all", "--level", "warning", "--since", "1h", "--json")
    assert out.returncode == 0, out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [d["message"] for d in docs] == ["fresh warning"]
    assert docs[0]["level"] == "WARNING" and docs[0]["host"] == "h"


async def test_a_database_lost_under_logs_follow_is_one_line_exit_2(
    own_pg_home: Path, tmp_path: Path
) -> None:
    server = EmbeddedServer(own_pg_home)
    url = server.ensure_running()
    conn = await db.open_url(url)
    await Queue(conn).enqueue([TaskSpec("noop")])
    await conn.close()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CONTENTCTL_HOME": str(own_pg_home),
        "CONTENTCTL_INVENTORY": str(tmp_path / "none.yaml"),
    }
    (tmp_path / "none.yaml").write_text("hosts: {}\n")
    follow = subprocess.Popen(
        [sys.executable, "-m", "tui.launcher", "logs", "all", "-f"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watch = await db.open_url(url)

    async def following() -> bool:  # it has read the logs once and waits for more
        assert follow.poll() is None, follow.communicate()[1]
        row = await db.row(
            watch,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " AND state = 'idle' AND query LIKE '%%agent_logs%%'",
        )
        return bool(row and row["n"])

    try:
        try:
            await wait_for(following, 30, interval_s=0.1)
        finally:
            await watch.close()
        server.stop()
        _, err = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.communicate()
    assert follow.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err, err
