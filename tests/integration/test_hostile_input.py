"""Hostile sources: a feed or a page that points workers at the metadata service or a local
file, a symlink handed to `add`. Each is the probe, then the check that it was refused and
nothing leaked."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from control.core import db
from tests.helpers import contentctl

pytestmark = pytest.mark.slow


async def test_a_worker_refuses_the_metadata_service_without_retrying(
    agent_env: dict[str, str],
    spawn_agent: Callable[..., subprocess.Popen[str]],
    conn: db.AsyncConn,
) -> None:
    added = contentctl(agent_env, "add", "http://169.254.169.254/latest/meta-data/")
    assert added.returncode == 0, added.stderr
    agent = spawn_agent("--host", "w1", "--burst")
    agent.communicate(timeout=60)
    cur = await conn.execute(
        "SELECT state, attempts, error_message FROM tasks WHERE type = 'download_youtube'"
    )
    row = await cur.fetchone()
    assert row is not None
    assert row["state"] == "failed" and row["attempts"] == 1  # not retried
    assert "link-local" in row["error_message"]


@pytest.mark.parametrize(
    "source", ["file:///etc/passwd", "https://me:hunter2@example.org/v", "gopher://x/1"]
)
async def test_add_refuses_what_is_not_a_plain_web_address(
    source: str, agent_env: dict[str, str], conn: db.AsyncConn
) -> None:
    out = contentctl(agent_env, "add", source)
    assert out.returncode == 2 and "hunter2" not in out.stderr, out.stderr
    cur = await conn.execute("SELECT count(*) AS n FROM media_items")
    assert (await cur.fetchone() or {})["n"] == 0


async def test_add_refuses_a_symlink_and_keeps_a_private_file_private(
    agent_env: dict[str, str], tmp_path: Path, conn: db.AsyncConn
) -> None:
    secret = tmp_path / "secret.ogg"
    secret.write_bytes(b"OggS private")
    os.chmod(secret, 0o600)
    link = tmp_path / "innocent.ogg"
    link.symlink_to("/etc/shadow")
    out = contentctl(agent_env, "add", str(link))
    assert out.returncode == 2 and "symbolic link" in out.stderr, out.stderr
    out = contentctl(agent_env, "add", str(secret), "--json")
    assert out.returncode == 0, out.stderr
    copies = list(Path(agent_env["CONTENTCTL_HOME"]).rglob("media/*/source.ogg"))
    assert len(copies) == 1
    assert stat.S_IMODE(copies[0].stat().st_mode) == 0o600


async def test_add_refuses_a_linked_directory_a_hard_link_and_pseudo_files(
    agent_env: dict[str, str], tmp_path: Path, conn: db.AsyncConn
) -> None:
    """Before: `add` refused a direct symlink but followed a symlinked directory above the
    file, a hard link and /proc/self/environ (the process's environment, secrets and all,
    copied into shared storage). Each is refused now, one line, nothing added."""
    secret_dir = tmp_path / "private"
    secret_dir.mkdir()
    (secret_dir / "talk.ogg").write_bytes(b"OggS private")
    (tmp_path / "via").symlink_to(secret_dir)
    hard = tmp_path / "hard.ogg"
    os.link(secret_dir / "talk.ogg", hard)
    for path, said in (
        (tmp_path / "via" / "talk.ogg", "symbolic link"),
        (hard, "hard links"),
        (Path("/proc/self/environ"), "pseudo-file"),
        (Path("/dev/null"), "pseudo-file"),
    ):
        out = contentctl(agent_env, "add", str(path))
        assert out.returncode == 2 and said in out.stderr, (path, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
    cur = await conn.execute("SELECT count(*) AS n FROM media_items")
    assert (await cur.fetchone() or {})["n"] == 0


async def test_task_processes_get_no_database_url_or_secrets(
    agent_env: dict[str, str], spawn_agent: Callable[..., subprocess.Popen[str]], conn: db.AsyncConn
) -> None:
    import asyncio

    import psutil

    from control.core.queue import Queue, TaskSpec

    await Queue(conn).enqueue([TaskSpec("sleep", payload={"seconds": 5})])
    env = {**agent_env, "PGPASSWORD": "pg-Secret-1", "DEEPL_API_KEY": "dk-Secret-2"}
    agent = spawn_agent("--host", "w1", env=env)
    environ: dict[str, str] = {}
    for _ in range(100):
        kids = [
            p
            for p in psutil.Process(agent.pid).children(recursive=True)
            if "agent.child" in " ".join(p.cmdline())
        ]
        if kids:
            environ = kids[0].environ()
            break
        await asyncio.sleep(0.1)
    if not environ:
        agent.kill()
        _, err = agent.communicate(timeout=10)
        raise AssertionError(f"no task process started: {err[-2000:]}")
    assert "CONTENTCTL_DATABASE_URL" not in environ
    assert "pg-Secret-1" not in environ.values() and "dk-Secret-2" not in environ.values()
    assert environ.get("CONTENTCTL_HOME") == agent_env["CONTENTCTL_HOME"]  # the rest is there


async def test_one_video_under_two_urls_is_one_item(
    agent_env: dict[str, str], conn: db.AsyncConn
) -> None:
    """`youtu.be/ID` and `watch?v=ID&t=10` are the same video (yt-dlp's extractor and id,
    matched offline); a direct media URL is its own identity."""
    import json

    first = contentctl(agent_env, "add", "https://youtu.be/dQw4w9WgXcQ", "--json")
    again = contentctl(
        agent_env, "add", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=10", "--json"
    )
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert json.loads(first.stdout)[0]["created"] is True
    assert json.loads(again.stdout)[0]["created"] is False
    other = contentctl(agent_env, "add", "http://127.0.0.1:9/talk.ogg", "--json")
    assert json.loads(other.stdout)[0]["created"] is True
    cur = await conn.execute("SELECT count(*) AS n FROM media_items")
    assert (await cur.fetchone() or {})["n"] == 2
