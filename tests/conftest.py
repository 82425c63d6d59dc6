"""Real PostgreSQL for every test: one embedded server per test session, the schema built once
in a template database, and a fresh `CREATE DATABASE ... TEMPLATE` per test (procrastinate)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from control.core import db
from control.core.queue import Queue
from control.head.embedded import EmbeddedServer
from tests.helpers import contentctl, loopback_http

TEMPLATE = "contentctl_template"
_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


def pg_dir(prefix: str) -> Path:
    """A directory for an embedded server's data, directly under the system temp dir.

    Not under pytest's tmp_path: the server runs as its own system user, and every pytest that
    starts (another run on the same machine) sets its user's temp root back to 0700, which would
    pull the data directory from under a running server."""
    return Path(tempfile.mkdtemp(prefix=f"contentctl-test-{prefix}-"))


@pytest.fixture
def own_pg_home() -> Iterator[Path]:
    """A state dir for a test's own embedded server (stopped by the test), removed at the end."""
    home = pg_dir("own")
    try:
        yield home
    finally:
        with contextlib.suppress(Exception):
            EmbeddedServer(home).stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_home() -> Iterator[Path]:
    """The state dir of the session's embedded server; the server is stopped by pid at the end."""
    home = pg_dir("session")
    server = EmbeddedServer(home)
    server.ensure_running()
    pid = server.pid()
    try:
        yield home
    finally:
        try:
            server.stop()
        finally:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def admin_url(pg_home: Path) -> str:
    return _with_database(EmbeddedServer(pg_home).ensure_running(), "postgres")


@pytest.fixture(scope="session")
def template_url(admin_url: str) -> str:
    import asyncio

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    url = _with_database(admin_url, TEMPLATE)

    async def build() -> None:
        conn = await db.connect(url)
        try:
            await db.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    return url


@pytest.fixture
def db_url(admin_url: str, template_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[db.AsyncConn]:
    c = await db.connect(db_url)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
def queue(conn: db.AsyncConn) -> Queue:
    return Queue(conn)


@pytest.fixture
def agent_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for agent processes: this test's database, its own state dir and inventory
    (`tests_inventory` writes it; empty by default)."""
    env = dict(os.environ)
    env["CONTENTCTL_DATABASE_URL"] = db_url
    env["CONTENTCTL_HOME"] = str(tmp_path / "home")
    inv = tmp_path / "inventory.yaml"
    if not inv.exists():
        inv.write_text("hosts: {}\n")
    env["CONTENTCTL_INVENTORY"] = str(inv)
    return env


@pytest.fixture
def spawn_agent(agent_env: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `contentctl agent run ARGS...`; every agent (and its task processes) is killed by
    pid when the test ends."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, "-m", "tui.launcher", "agent", "run", *args],
            env=env or agent_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            kill_tree(p.pid)
        p.communicate(timeout=30)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything below it (task processes lead their own groups)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def as_role(url: str, role: str) -> str:
    """The same database as `url` (a unix-socket URL of the session's server), logged in as
    `role`: the socket's `peer` map lets this machine's user in as any role, no password."""
    scheme, _, rest = url.partition("://")
    _, _, after_user = rest.partition("@")
    return f"{scheme}://{role}@{after_user}"


@pytest.fixture
def agent_role_url(admin_url: str, db_url: str) -> Callable[[str], str]:
    """`agent_role_url(host)`: this test's database as host's own agent role (`agent_<host>`,
    made as provisioning makes it: a member of the agents' group that cannot become it)."""
    from control.head.embedded import AGENT_GROUP

    def make(host: str) -> str:
        role = f"agent_{host}"
        with psycopg.connect(admin_url, autocommit=True) as c:
            if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                with contextlib.suppress(psycopg.errors.DuplicateObject):  # a parallel run
                    c.execute(f'CREATE ROLE "{role}" LOGIN')
            c.execute(f'GRANT "{AGENT_GROUP}" TO "{role}" WITH INHERIT TRUE, SET FALSE')
        return as_role(db_url, role)

    return make


@pytest.fixture
def cli(agent_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`cli("media", "7", "--json")`: contentctl in a process of its own, with the test's
    database, state dir and inventory (tests/helpers.py `contentctl`)."""
    return functools.partial(contentctl, agent_env)


ASSETS = Path(__file__).parent.parent / "control" / "head" / "assets"


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def media_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a fresh directory holding the speech sample as `talk.ogg`
    (yt-dlp downloads it from there): its base URL and the directory. Stopped at the end."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(ASSETS / "speech.ogg", root / "talk.ogg")
    with loopback_http(functools.partial(_QuietFiles, directory=str(root))) as url:
        yield url, root
